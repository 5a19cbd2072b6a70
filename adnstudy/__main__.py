from adnstudy.cli import main

main()
