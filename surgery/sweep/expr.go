package sweep

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// expr is a parsed arithmetic expression over numbers and named values,
// such as "2*r" or "lr / (r + 1)".
type expr interface {
	eval(env func(name string) (number, error)) (number, error)
	names(into []string) []string
}

// number is an expression value: integers stay integers through +, - and
// * so that "2*r" yields an integer lora_alpha; / and any float operand
// give a float.
type number struct {
	f     float64
	isInt bool
}

func (n number) value() any {
	if n.isInt && math.Abs(n.f) < 1<<53 {
		return int64(n.f)
	}
	return n.f
}

// numberOf converts a TOML scalar to a number.
func numberOf(v any) (number, bool) {
	switch x := v.(type) {
	case int64:
		return number{float64(x), true}, true
	case int:
		return number{float64(x), true}, true
	case float64:
		return number{x, false}, true
	}
	return number{}, false
}

type numLit struct{ n number }
type nameRef struct{ name string }
type neg struct{ x expr }
type binary struct {
	op   byte
	l, r expr
}

func (e numLit) eval(func(string) (number, error)) (number, error) { return e.n, nil }
func (e numLit) names(into []string) []string                      { return into }

func (e nameRef) eval(env func(string) (number, error)) (number, error) { return env(e.name) }
func (e nameRef) names(into []string) []string                          { return append(into, e.name) }

func (e neg) eval(env func(string) (number, error)) (number, error) {
	x, err := e.x.eval(env)
	return number{-x.f, x.isInt}, err
}
func (e neg) names(into []string) []string { return e.x.names(into) }

func (e binary) eval(env func(string) (number, error)) (number, error) {
	l, err := e.l.eval(env)
	if err != nil {
		return number{}, err
	}
	r, err := e.r.eval(env)
	if err != nil {
		return number{}, err
	}
	isInt := l.isInt && r.isInt
	var v float64
	switch e.op {
	case '+':
		v = l.f + r.f
	case '-':
		v = l.f - r.f
	case '*':
		v = l.f * r.f
	case '/':
		if r.f == 0 {
			return number{}, fmt.Errorf("division by zero")
		}
		v, isInt = l.f/r.f, false
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return number{}, fmt.Errorf("result %v is not finite", v)
	}
	return number{v, isInt}, nil
}
func (e binary) names(into []string) []string { return e.r.names(e.l.names(into)) }

// parseExpr parses an expression of numbers, names (letters, digits, '_'
// and '.', starting with a letter or '_'), + - * /, unary minus and
// parentheses.
func parseExpr(s string) (expr, error) {
	p := &exprParser{src: s}
	e, err := p.sum()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.src) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.src[p.i:], p.i)
	}
	return e, nil
}

type exprParser struct {
	src string
	i   int
}

func (p *exprParser) space() {
	for p.i < len(p.src) && (p.src[p.i] == ' ' || p.src[p.i] == '\t') {
		p.i++
	}
}

func (p *exprParser) peek() byte {
	p.space()
	if p.i < len(p.src) {
		return p.src[p.i]
	}
	return 0
}

func (p *exprParser) sum() (expr, error) {
	l, err := p.product()
	if err != nil {
		return nil, err
	}
	for c := p.peek(); c == '+' || c == '-'; c = p.peek() {
		p.i++
		r, err := p.product()
		if err != nil {
			return nil, err
		}
		l = binary{c, l, r}
	}
	return l, nil
}

func (p *exprParser) product() (expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for c := p.peek(); c == '*' || c == '/'; c = p.peek() {
		p.i++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = binary{c, l, r}
	}
	return l, nil
}

func (p *exprParser) unary() (expr, error) {
	switch c := p.peek(); {
	case c == '-':
		p.i++
		x, err := p.unary()
		return neg{x}, err
	case c == '+':
		p.i++
		return p.unary()
	case c == '(':
		p.i++
		e, err := p.sum()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, fmt.Errorf("missing ')' at offset %d", p.i)
		}
		p.i++
		return e, nil
	case c >= '0' && c <= '9' || c == '.':
		start := p.i
		for p.i < len(p.src) && (isDigit(p.src[p.i]) || p.src[p.i] == '.' || p.src[p.i] == '_') {
			p.i++
		}
		// An exponent: 1e-4, 2E3.
		if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
			j := p.i + 1
			if j < len(p.src) && (p.src[j] == '+' || p.src[j] == '-') {
				j++
			}
			if j < len(p.src) && isDigit(p.src[j]) {
				for j < len(p.src) && isDigit(p.src[j]) {
					j++
				}
				p.i = j
			}
		}
		lit := strings.ReplaceAll(p.src[start:p.i], "_", "")
		if i, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return numLit{number{float64(i), true}}, nil
		}
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", lit)
		}
		return numLit{number{f, false}}, nil
	case isLetter(c):
		start := p.i
		for p.i < len(p.src) && (isLetter(p.src[p.i]) || isDigit(p.src[p.i]) || p.src[p.i] == '.') {
			p.i++
		}
		return nameRef{strings.TrimRight(p.src[start:p.i], ".")}, nil
	case c == 0:
		return nil, fmt.Errorf("unexpected end")
	default:
		return nil, fmt.Errorf("unexpected %q at offset %d", c, p.i)
	}
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
