from voice_companion.cli.main import main

raise SystemExit(main())
