from lsr.cli.app import main

main()
