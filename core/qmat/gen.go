package qmat

// The assembly kernels are written by an avo program; TestGeneratedUpToDate
// checks that the committed files match its output.
//go:generate go run ./internal/asmgen
