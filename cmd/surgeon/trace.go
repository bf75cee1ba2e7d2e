package main

import "os"

func traceEnabled() bool { return os.Getenv("SURGEON_TRACE") != "" }
