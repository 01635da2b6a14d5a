from siyu.cli.app import main

main()
