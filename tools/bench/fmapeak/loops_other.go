//go:build !amd64

package main

// available returns no loops: there is no assembly for this architecture.
func available() []loop { return nil }
