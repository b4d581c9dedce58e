from pda_client.cli import main

main()
