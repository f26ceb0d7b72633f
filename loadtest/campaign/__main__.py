from loadtest.campaign.run import main

main()
