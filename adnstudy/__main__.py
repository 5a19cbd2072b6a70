from adnstudy.entry import main

main()
