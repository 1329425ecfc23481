from guardproxy.cli import main

raise SystemExit(main())
