from storycore_devstack.cli import main

main()
