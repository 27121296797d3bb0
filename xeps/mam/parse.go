package mam

import (
	"strconv"
	"strings"
	"time"

	"github.com/xmppd/xmppd/stanza"
)

// Page sizes (XEP-0059 <max/>): without one a page holds DefaultPage
// results; more than MaxPage is capped to it, never refused, so a client
// asking for 10,000 gets pages of MaxPage.
const (
	DefaultPage = 50
	MaxPage     = 250
)

// maxIDs bounds the ids field (one Get per id).
const maxIDs = MaxPage

// maxText bounds the full-text field: a query, not a document.
const maxText = 1024

// request is a parsed archive query (XEP-0313 §4.1).
type request struct {
	ns      string // NS or NS1: the namespace of the answer
	queryID string

	with              stanza.JID
	hasWith           bool
	start, end        time.Time
	afterID, beforeID string
	ids               []string
	text              string

	rsm rsm
}

// rsm is a XEP-0059 <set/> in a request.
type rsm struct {
	max       int // -1: none given
	after     string
	before    string
	hasBefore bool // <before/> present, perhaps empty: page from the end
}

func badRequest(format string, args ...any) *stanza.Error {
	return stanza.Errorf("bad-request", format, args...)
}

// parseQuery reads a <query/> set request: its form and its RSM set. The
// errors are those XEP-0313 and XEP-0059 name: bad-request for a malformed
// form or set, feature-not-implemented for RSM <index/>.
func parseQuery(q *stanza.Element) (*request, *stanza.Error) {
	r := &request{ns: q.Space, queryID: q.Get("queryid"), rsm: rsm{max: -1}}
	if len(r.queryID) > 256 {
		return nil, badRequest("queryid too long")
	}
	for _, c := range q.Children() {
		switch {
		case c.Is(NSData, "x"):
			if err := r.parseForm(c); err != nil {
				return nil, err
			}
		case c.Is(NSRSM, "set"):
			s, err := parseRSM(c)
			if err != nil {
				return nil, err
			}
			r.rsm = s
		}
	}
	return r, nil
}

// parseForm reads the XEP-0004 data form of a query.
func (r *request) parseForm(x *stanza.Element) *stanza.Error {
	if t := x.Get("type"); t != "" && t != "submit" {
		return badRequest("the query form must be of type submit")
	}
	seen := map[string]bool{}
	for _, f := range x.Children() {
		if !f.Is(NSData, "field") {
			continue
		}
		name := f.Get("var")
		if seen[name] {
			return badRequest("field %q given twice", name)
		}
		seen[name] = true
		var values []string
		for _, v := range f.Children() {
			if v.Is(NSData, "value") {
				values = append(values, v.Text())
			}
		}
		single := func() (string, *stanza.Error) {
			switch len(values) {
			case 0:
				return "", nil
			case 1:
				return strings.TrimSpace(values[0]), nil
			}
			return "", badRequest("field %q takes one value", name)
		}
		v, err := single()
		if name != "ids" && err != nil {
			return err
		}
		switch name {
		case "FORM_TYPE":
			if v != r.ns {
				return badRequest("FORM_TYPE %q does not match the query's namespace %s", v, r.ns)
			}
		case "with":
			if v == "" {
				continue
			}
			j, err := stanza.ParseJID(v)
			if err != nil {
				return stanza.Errorf("bad-request", "with: %q is not a JID", v)
			}
			r.with, r.hasWith = j, true
		case "start", "end":
			if v == "" {
				continue
			}
			t, err := parseDateTime(v)
			if err != nil {
				return badRequest("%s: %q is not a XEP-0082 date and time", name, v)
			}
			if name == "start" {
				r.start = t
			} else {
				r.end = t
			}
		case "after-id":
			r.afterID = v
		case "before-id":
			r.beforeID = v
		case "ids":
			if len(values) > maxIDs {
				return badRequest("ids: at most %d", maxIDs)
			}
			for _, s := range values {
				if s = strings.TrimSpace(s); s != "" {
					r.ids = append(r.ids, s)
				}
			}
		case "{" + NSFulltext + "}fulltext", "withtext": // withtext: COMPAT, ejabberd's and Prosody's name before XEP-0431
			if len(v) > maxText {
				return stanza.Errorf("not-acceptable", "the search text is longer than %d bytes", maxText)
			}
			r.text = v
		default:
			// XEP-0313 §4.1: a field the server does not support is an error.
			return badRequest("field %q is not supported", name)
		}
	}
	return nil
}

// parseDateTime reads a XEP-0082 DateTime (a profile of RFC 3339; the
// fraction of a second is optional).
func parseDateTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// parseRSM reads a XEP-0059 <set/> of a request.
func parseRSM(set *stanza.Element) (rsm, *stanza.Error) {
	s := rsm{max: -1}
	seen := map[string]bool{}
	for _, c := range set.Children() {
		if c.Space != NSRSM {
			continue
		}
		if seen[c.Local] {
			return s, badRequest("<%s/> given twice in the result set", c.Local)
		}
		seen[c.Local] = true
		v := strings.TrimSpace(c.Text())
		switch c.Local {
		case "max":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return s, badRequest("<max/> must be a non-negative integer")
			}
			s.max = n
		case "after":
			if v == "" {
				return s, badRequest("<after/> needs an id")
			}
			s.after = v
		case "before":
			s.before, s.hasBefore = v, true
		case "index":
			return s, stanza.Errorf("feature-not-implemented", "paging by <index/> is not supported; use <after/> or <before/>")
		default:
			return s, badRequest("<%s/> is not part of a result set request", c.Local)
		}
	}
	return s, nil
}

// pageSize is how many results a page holds.
func (s rsm) pageSize() int {
	switch {
	case s.max < 0:
		return DefaultPage
	case s.max > MaxPage:
		return MaxPage
	}
	return s.max
}
