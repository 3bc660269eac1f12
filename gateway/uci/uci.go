// Package uci parses and writes OpenWrt's UCI configuration files, the
// format of /etc/config/network and of our own /etc/config/gateway.
//
// The grammar is that of libuci's file.c, kept to one statement per line:
//
//	package NAME
//	config TYPE ['NAME']
//	option NAME 'VALUE'
//	list NAME 'VALUE'
//
// Words are shell-like: single-quoted, double-quoted (a backslash escapes
// the next byte) and bare parts concatenate into one word. That is how the
// literal quote uci writes inside a single-quoted value is read:
//
//	option motd 'it'\''s'   →   it's
//
// A '#' that starts a word starts a comment. Multi-line values are not
// supported. Comments are kept with the statement that follows them (a
// comment at the end of a line goes with that line's statement), so that a
// file edited in code and written back keeps them; blank lines and
// alignment are not kept: Append writes uci's own layout.
//
// The package owns no I/O: callers read the file and hand Parse its bytes.
package uci

import (
	"fmt"
	"slices"
	"strings"
)

// File is one parsed UCI file.
type File struct {
	Name     string // file name used in errors
	Package  string // from a `package` line, may be empty
	Sections []*Section
	// Head are the comment lines before the package line; Tail those
	// after the last statement. Each starts with '#'.
	Head, Tail []string
}

// Section is one `config` block.
type Section struct {
	Type    string
	Name    string // "" for anonymous
	Line    int    // line of the `config` statement
	Options []*Option
	// Comments are the comment lines before the `config` statement (and
	// the one at its end), each starting with '#'.
	Comments []string
}

// Option is one `option`, or all `list` statements of one name in a section.
type Option struct {
	Name   string
	Values []string // one for `option`, one or more for `list`
	List   bool
	Line   int // line of the first statement that set it
	// Comments are the comment lines before its statements (and at
	// their ends), each starting with '#'.
	Comments []string
}

// Error is a problem at a line of a file.
type Error struct {
	File   string
	Line   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// Errf makes an *Error at line of f, for callers that validate values, so
// their messages look like Parse's.
func (f *File) Errf(line int, format string, args ...any) error {
	return &Error{File: f.Name, Line: line, Reason: fmt.Sprintf(format, args...)}
}

// Parse parses data, the contents of the file called name, and returns the
// first problem as an *Error. It is stricter than uci where a hand-written
// file is almost surely wrong: a section name used twice (uci merges the
// sections) and `option x` mixed with `list x` in one section.
func Parse(name string, data []byte) (*File, error) {
	f := &File{Name: name}
	var (
		sec   *Section
		last  map[string]*Option // sec's last option of each name
		named = map[string]int{} // section name → line of its `config`
		notes []string           // comments not yet given to a statement
	)
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r") // tolerate files edited on Windows
		w, note, reason := words(line)
		if reason != "" {
			return nil, f.Errf(n, "%s", reason)
		}
		if note != "" {
			notes = append(notes, note)
		}
		if len(w) == 0 {
			continue
		}
		switch kw := w[0]; kw {
		case "package":
			switch {
			case len(w) < 2:
				return nil, f.Errf(n, "expected 'package NAME'")
			case len(w) > 2:
				return nil, f.Errf(n, "too many values")
			case !validPackage(w[1]):
				return nil, f.Errf(n, "invalid package name %q", w[1])
			case f.Package != "":
				return nil, f.Errf(n, "more than one package statement")
			case sec != nil:
				return nil, f.Errf(n, "package statement after a config section")
			}
			f.Package = w[1]
			f.Head, notes = notes, nil
		case "config":
			switch {
			case len(w) < 2:
				return nil, f.Errf(n, "expected 'config TYPE [NAME]'")
			case len(w) > 3:
				return nil, f.Errf(n, "too many values")
			case !validName(w[1]):
				return nil, f.Errf(n, "invalid section type %q", w[1])
			}
			sec = &Section{Type: w[1], Line: n, Comments: notes}
			notes = nil
			last = map[string]*Option{}
			// uci treats `config TYPE ''` as anonymous too.
			if len(w) == 3 && w[2] != "" {
				if !validName(w[2]) {
					return nil, f.Errf(n, "invalid section name %q", w[2])
				}
				// uci would merge the two; in a hand-written file that
				// is almost always a copy-paste mistake.
				if first, dup := named[w[2]]; dup {
					return nil, f.Errf(n, "duplicate section name %q (first on line %d)", w[2], first)
				}
				named[w[2]] = n
				sec.Name = w[2]
			}
			f.Sections = append(f.Sections, sec)
		case "option", "list":
			isList := kw == "list"
			switch {
			case sec == nil:
				return nil, f.Errf(n, "%s outside of a config section", kw)
			case len(w) < 3:
				return nil, f.Errf(n, "expected '%s NAME VALUE'", kw)
			case len(w) > 3:
				return nil, f.Errf(n, "too many values")
			case !validName(w[1]):
				return nil, f.Errf(n, "invalid %s name %q", kw, w[1])
			}
			prev := last[w[1]]
			if prev != nil && prev.List != isList {
				return nil, f.Errf(n, "%s %q conflicts with %s %q on line %d", kw, w[1], keyword(prev.List), w[1], prev.Line)
			}
			if isList && prev != nil {
				prev.Values = append(prev.Values, w[2])
				prev.Comments = append(prev.Comments, notes...)
				notes = nil
				continue
			}
			// A repeated `option` is kept, in order; Section.Option
			// returns the last, as uci does.
			o := &Option{Name: w[1], Values: []string{w[2]}, List: isList, Line: n, Comments: notes}
			notes = nil
			sec.Options = append(sec.Options, o)
			last[w[1]] = o
		default:
			return nil, f.Errf(n, "unknown keyword %q (want package, config, option or list)", kw)
		}
	}
	f.Tail = notes
	return f, nil
}

// words splits a line into shell-like words and a trailing comment (from
// its '#', trailing blanks trimmed). It returns a reason when the line
// cannot be split.
func words(line string) (ws []string, comment, reason string) {
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return ws, "", ""
		}
		if line[i] == '#' {
			return ws, strings.TrimRight(line[i:], " \t\r"), ""
		}
		var w []byte
		for i < len(line) && !isSpace(line[i]) {
			switch c := line[i]; c {
			case '\'': // no escapes inside single quotes
				j := strings.IndexByte(line[i+1:], '\'')
				if j < 0 {
					return nil, "", "unterminated quote"
				}
				w = append(w, line[i+1:i+1+j]...)
				i += j + 2
			case '"': // a backslash escapes the next byte
				j := i + 1
				for ; j < len(line) && line[j] != '"'; j++ {
					if line[j] == '\\' && j+1 < len(line) {
						j++
					}
					w = append(w, line[j])
				}
				if j == len(line) {
					return nil, "", "unterminated quote"
				}
				i = j + 1
			case '\\':
				if i+1 == len(line) {
					return nil, "", "backslash at end of line"
				}
				w = append(w, line[i+1])
				i += 2
			default:
				w = append(w, c)
				i++
			}
		}
		ws = append(ws, string(w))
	}
}

func keyword(list bool) string {
	if list {
		return "list"
	}
	return "option"
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// validName reports whether s may name a section, a type or an option.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// validPackage also allows '-', since packages are file names such as
// /etc/config/https-dns-proxy.
func validPackage(s string) bool {
	return validName(strings.ReplaceAll(s, "-", "_"))
}

// Append appends f as uci commit and uci export write it: the package line
// if set, then each section after a blank line with its options
// tab-indented and values single-quoted, then a final blank line. The
// comments are written on their own lines before their statements (Tail
// after the last section).
//
// Append does not check f; a File that did not come from Parse should pass
// Check first, or the text may not parse back.
func (f *File) Append(dst []byte) []byte {
	dst = appendComments(dst, "", f.Head)
	if f.Package != "" {
		dst = append(dst, "package "...)
		dst = append(dst, f.Package...)
		dst = append(dst, '\n')
	}
	for _, s := range f.Sections {
		dst = append(dst, '\n')
		dst = appendComments(dst, "", s.Comments)
		dst = append(dst, "config "...)
		dst = append(dst, s.Type...)
		if s.Name != "" {
			dst = append(dst, ' ')
			dst = appendQuoted(dst, s.Name)
		}
		dst = append(dst, '\n')
		for _, o := range s.Options {
			dst = appendComments(dst, "\t", o.Comments)
			kw := "\toption "
			if o.List {
				kw = "\tlist "
			}
			for _, v := range o.Values {
				dst = append(dst, kw...)
				dst = append(dst, o.Name...)
				dst = append(dst, ' ')
				dst = appendQuoted(dst, v)
				dst = append(dst, '\n')
			}
		}
	}
	if len(f.Tail) > 0 {
		dst = append(dst, '\n')
		dst = appendComments(dst, "", f.Tail)
	}
	return append(dst, '\n')
}

func appendComments(dst []byte, indent string, lines []string) []byte {
	for _, c := range lines {
		dst = append(dst, indent...)
		dst = append(dst, c...)
		dst = append(dst, '\n')
	}
	return dst
}

// appendQuoted single-quotes v as uci_escape does.
func appendQuoted(dst []byte, v string) []byte {
	// Close the quote, write an escaped quote, reopen: '\''
	dst = append(dst, '\'')
	dst = append(dst, strings.ReplaceAll(v, "'", `'\''`)...)
	return append(dst, '\'')
}

// Check reports the first thing in f that Parse would reject once f is
// written with Append. Files from Parse always pass; use it on a File built
// or edited in code before writing it out.
func (f *File) Check() error {
	if f.Package != "" && !validPackage(f.Package) {
		return f.Errf(0, "invalid package name %q", f.Package)
	}
	if err := f.checkComments(0, f.Head, f.Tail); err != nil {
		return err
	}
	named := map[string]bool{}
	for _, s := range f.Sections {
		switch {
		case !validName(s.Type):
			return f.Errf(s.Line, "invalid section type %q", s.Type)
		case s.Name != "" && !validName(s.Name):
			return f.Errf(s.Line, "invalid section name %q", s.Name)
		case s.Name != "" && named[s.Name]:
			return f.Errf(s.Line, "duplicate section name %q", s.Name)
		}
		named[s.Name] = true
		if err := f.checkComments(s.Line, s.Comments); err != nil {
			return err
		}
		isList := map[string]bool{}
		for _, o := range s.Options {
			if err := f.checkComments(o.Line, o.Comments); err != nil {
				return err
			}
			kw := keyword(o.List)
			if !validName(o.Name) {
				return f.Errf(o.Line, "invalid %s name %q", kw, o.Name)
			}
			if l, seen := isList[o.Name]; seen && l != o.List {
				return f.Errf(o.Line, "%s %q conflicts with %s %q", kw, o.Name, keyword(!o.List), o.Name)
			}
			isList[o.Name] = o.List
			if len(o.Values) == 0 || !o.List && len(o.Values) > 1 {
				return f.Errf(o.Line, "%s %q has %d values", kw, o.Name, len(o.Values))
			}
			// No quoting can carry a newline: values are one line.
			if slices.ContainsFunc(o.Values, func(v string) bool { return strings.Contains(v, "\n") }) {
				return f.Errf(o.Line, "%s %q has a value with a newline", kw, o.Name)
			}
		}
	}
	return nil
}

// checkComments reports a comment that would not read back as itself.
func (f *File) checkComments(line int, sets ...[]string) error {
	for _, cs := range sets {
		for _, c := range cs {
			if !strings.HasPrefix(c, "#") || strings.ContainsAny(c, "\n") || strings.TrimRight(c, " \t\r") != c {
				return f.Errf(line, "comment %q must start with '#', be one line and end in no blank", c)
			}
		}
	}
	return nil
}

// SectionsOfType returns the sections of type typ, in file order.
func (f *File) SectionsOfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Section returns the section called name, or nil.
func (f *File) Section(name string) *Section {
	if name == "" {
		return nil // anonymous sections have no name to find
	}
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Option returns the last option called name, or nil; like uci, a later
// `option` overrides an earlier one.
func (s *Section) Option(name string) *Option {
	for _, o := range slices.Backward(s.Options) {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Get returns the value of option name: its last value, which for a list is
// the last item. Check Option(name).List where a list is not wanted.
func (s *Section) Get(name string) (string, bool) {
	o := s.Option(name)
	if o == nil || len(o.Values) == 0 {
		return "", false
	}
	return o.Values[len(o.Values)-1], true
}

// Values returns all values of option name: one for an `option`, every
// item for a `list`, nil if absent. Daemons read lists through it, and it
// also accepts a single `option` where users wrote one value.
func (s *Section) Values(name string) []string {
	if o := s.Option(name); o != nil {
		return o.Values
	}
	return nil
}

// Set makes name an `option` with value, as `uci set` does: it replaces the
// last option of that name (turning a list into an option) or appends one.
func (s *Section) Set(name, value string) {
	if o := s.Option(name); o != nil {
		o.Values = []string{value}
		o.List = false
		return
	}
	s.Options = append(s.Options, &Option{Name: name, Values: []string{value}})
}

// Del removes every option called name; it reports whether there was one.
func (s *Section) Del(name string) bool {
	n := len(s.Options)
	s.Options = slices.DeleteFunc(s.Options, func(o *Option) bool { return o.Name == name })
	return len(s.Options) != n
}

// Add adds an empty section of type typ called name ("" for anonymous)
// after the last section of that type, or at the end, and returns it, as
// `uci add` and `uci set p.name=typ` do. The caller keeps names unique
// (Check finds duplicates).
func (f *File) Add(typ, name string) *Section {
	s := &Section{Type: typ, Name: name}
	i := len(f.Sections)
	for j, o := range f.Sections {
		if o.Type == typ {
			i = j + 1
		}
	}
	f.Sections = slices.Insert(f.Sections, i, s)
	return s
}

// Remove removes section s, and its comments with it; it reports whether
// s was in f.
func (f *File) Remove(s *Section) bool {
	i := slices.Index(f.Sections, s)
	if i < 0 {
		return false
	}
	f.Sections = slices.Delete(f.Sections, i, i+1)
	return true
}
