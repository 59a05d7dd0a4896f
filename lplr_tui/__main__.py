from lplr_tui.cli import main

main()
