package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
)

// command is one subcommand of the CLI.
type command struct {
	usage string
	short string
	run   func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{}

func register(name string, c command) { commands[name] = c }

// usageError marks errors caused by how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func mainUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: surgeon COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].short)
	}
	fmt.Fprintln(w, "\nRun 'surgeon COMMAND -h' for a command's flags.")
}

// run executes the CLI and returns the exit code. Every failure is one line
// on stderr; a panic is reported the same way, never as a trace (set
// SURGEON_TRACE=1 to see it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "surgeon: internal error: %v\n", r)
			if traceEnabled() {
				stderr.Write(debug.Stack())
			}
			code = 3
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		mainUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "surgeon: unknown command %q (run 'surgeon help')\n", args[0])
		return 2
	}
	err := c.run(ctx, args[1:], stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "surgeon %s: %s\nusage: surgeon %s\n", args[0], oneLine(err.Error()), c.usage)
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "surgeon %s: interrupted\n", args[0])
		return 130
	default:
		fmt.Fprintf(stderr, "surgeon %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// parse parses flags that may appear before, between or after positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseArgs parses a command's flags, printing its help for -h.
func parseArgs(name string, fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	pos, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		helpFlags(stdout, name, fs)
	}
	return pos, err
}

// helpFlags prints a command's usage and flags.
func helpFlags(w io.Writer, name string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: surgeon %s\n\n", commands[name].usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}
