package recipe

import (
	"errors"
	"fmt"
	"sort"
)

// Error is one problem with a recipe. Load returns them joined with
// errors.Join; errors.As finds the first.
type Error struct {
	// File is the recipe file.
	File string
	// Line and Col locate the problem in File (1-based, columns counted
	// in characters); 0 when it has no single place, such as a missing
	// key or a value set with --set.
	Line, Col int
	// Set is the --set argument the offending value came from, if any.
	Set string
	// Key is the dotted key concerned ("train.lr", "targets.0.modules"),
	// or "" for a syntax error.
	Key string
	// Msg describes the problem.
	Msg string
	// Err is the underlying cause, if any.
	Err error
}

// Error formats the problem as FILE:LINE:COL: MSG, FILE: --set ARG: MSG or
// FILE: MSG.
func (e *Error) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Set != "":
		return fmt.Sprintf("%s: --set %s: %s", e.File, e.Set, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// errorList collects problems and joins them, located ones first in file
// order.
type errorList []*Error

func (l *errorList) add(e *Error) { *l = append(*l, e) }

func (l errorList) err() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if (a.Line > 0) != (b.Line > 0) {
			return a.Line > 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}
