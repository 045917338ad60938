from transferlab.entry import main

main()
