from voice_companion.cli import main

raise SystemExit(main())
