from namae.cli import main

main()
