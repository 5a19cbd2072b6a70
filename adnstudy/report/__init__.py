"""Reports of results folders and of the reproduction: a document model written as Markdown, HTML, CSV, PNG."""
