from crossbook_signer.main import main

raise SystemExit(main())
