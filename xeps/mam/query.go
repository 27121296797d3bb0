package mam

import (
	"context"
	"errors"
	"slices"

	"github.com/xmppd/xmppd/stanza"
	"github.com/xmppd/xmppd/xeps"
)

// stampFormat is XEP-0082 DateTime in UTC with milliseconds.
const stampFormat = "2006-01-02T15:04:05.000Z"

// maxFilterRounds bounds the store pages read to fill one page of a query
// whose 'with' is a full JID (the store indexes bare JIDs): a sparse
// resource answers with a short, incomplete page instead of a long scan.
const maxFilterRounds = 8

// fields answers a form discovery request (XEP-0313 §4.1.5).
func (a *archive) fields(_ context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	if _, serr := ownArchive(iq); serr != nil {
		return nil, serr
	}
	ns := iq.Payload.Space
	x := stanza.New(NSData, "x").Set("type", "form")
	field := func(name, typ string) *stanza.Element {
		f := stanza.New(NSData, "field").Set("var", name).Set("type", typ)
		x.Append(f)
		return f
	}
	field("FORM_TYPE", "hidden").Append(stanza.New(NSData, "value").AppendText(ns))
	field("with", "jid-single")
	field("start", "text-single")
	field("end", "text-single")
	field("after-id", "text-single")
	field("before-id", "text-single")
	field("ids", "text-multi")
	field("{"+NSFulltext+"}fulltext", "text-single")
	return stanza.New(ns, "query").Append(x), nil
}

// query answers an archive query: the results as messages to the querying
// resource, then the IQ result with <fin/>.
func (a *archive) query(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	owner, serr := ownArchive(iq)
	if serr != nil {
		return nil, serr
	}
	req, serr := parseQuery(iq.Payload)
	if serr != nil {
		return nil, serr
	}
	var entries []xeps.LogEntry
	complete := true
	var err error
	if len(req.ids) > 0 {
		entries, err = a.byIDs(ctx, owner, req)
	} else {
		entries, complete, err = a.page(ctx, owner, req)
	}
	if err != nil {
		return nil, err
	}
	to := iq.Get("from")
	for _, e := range entries {
		msg, err := a.result(owner, to, req, e)
		if err != nil {
			a.logger.Error("reading an archived message", "owner", owner.String(), "id", e.ID.String(), "err", err)
			continue
		}
		if !a.host.DeliverBacklog(ctx, msg) {
			return nil, stanza.Errorf("recipient-unavailable", "the session went away during the query")
		}
	}
	fin := stanza.New(req.ns, "fin")
	if complete {
		fin.Set("complete", "true")
	}
	set := stanza.New(NSRSM, "set")
	if len(entries) > 0 {
		set.Append(stanza.New(NSRSM, "first").AppendText(entries[0].ID.String()),
			stanza.New(NSRSM, "last").AppendText(entries[len(entries)-1].ID.String()))
	}
	return fin.Append(set), nil
}

// checkID parses an id a client names and checks it is in the archive.
func (a *archive) checkID(ctx context.Context, owner stanza.JID, s string) (xeps.LogID, error) {
	id, err := xeps.ParseLogID(s)
	if err == nil {
		_, err = a.log.Get(ctx, owner.String(), id)
	}
	if errors.Is(err, xeps.ErrNotFound) {
		return 0, stanza.Errorf("item-not-found", "no archived message has the id %q", s)
	}
	return id, err
}

// byIDs returns the entries the ids field names, in archive order.
func (a *archive) byIDs(ctx context.Context, owner stanza.JID, req *request) ([]xeps.LogEntry, error) {
	entries := make([]xeps.LogEntry, 0, len(req.ids))
	for _, s := range req.ids {
		id, err := xeps.ParseLogID(s)
		var e xeps.LogEntry
		if err == nil {
			e, err = a.log.Get(ctx, owner.String(), id)
		}
		if errors.Is(err, xeps.ErrNotFound) {
			return nil, stanza.Errorf("item-not-found", "no archived message has the id %q", s)
		}
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(entries, func(x xeps.LogEntry) bool { return x.ID == e.ID }) {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(x, y xeps.LogEntry) int {
		switch {
		case x.ID < y.ID:
			return -1
		case x.ID > y.ID:
			return 1
		}
		return 0
	})
	return entries, nil
}

// page runs a filtered, paged query.
func (a *archive) page(ctx context.Context, owner stanza.JID, req *request) ([]xeps.LogEntry, bool, error) {
	q := xeps.LogQuery{Start: req.start, End: req.end}
	if req.hasWith {
		q.With = req.with.Bare().String()
	}
	q.Text = req.text
	// after-id/before-id (the form) and RSM's after/before: each must name
	// an archived message (XEP-0313 §4.1.x; XEP-0059 §2.4: item-not-found).
	for _, b := range []struct {
		s     string
		after bool
	}{{req.afterID, true}, {req.rsm.after, true}, {req.beforeID, false}, {req.rsm.before, false}} {
		if b.s == "" {
			continue
		}
		id, err := a.checkID(ctx, owner, b.s)
		if err != nil {
			return nil, false, err
		}
		if b.after {
			q.After = max(q.After, id)
		} else if q.Before == 0 || id < q.Before {
			q.Before = id
		}
	}
	q.Backward = req.rsm.hasBefore
	size := req.rsm.pageSize()
	if size == 0 {
		// <max>0</max>: no results, only whether there are any.
		q.Limit = 1
		p, err := a.log.Query(ctx, owner.String(), q)
		if err != nil {
			return nil, false, queryErr(err)
		}
		return nil, len(p.Entries) == 0, nil
	}
	q.Limit = size
	full := req.hasWith && req.with.Resourcepart() != ""
	if !full {
		p, err := a.log.Query(ctx, owner.String(), q)
		return p.Entries, p.Complete, queryErr(err)
	}
	// 'with' a full JID: the store pages by bare JID; keep the messages
	// exchanged with that resource.
	var out []xeps.LogEntry
	for range maxFilterRounds {
		p, err := a.log.Query(ctx, owner.String(), q)
		if err != nil {
			return nil, false, queryErr(err)
		}
		var kept []xeps.LogEntry
		for _, e := range p.Entries {
			if withResource(e.Data, req.with.String()) {
				kept = append(kept, e)
			}
		}
		if q.Backward {
			out = append(kept, out...)
			if n := len(out); n > size {
				out = out[n-size:]
				return out, false, nil
			}
		} else {
			out = append(out, kept...)
			if len(out) > size {
				return out[:size], false, nil
			}
		}
		if p.Complete || len(p.Entries) == 0 {
			return out, p.Complete, nil
		}
		if q.Backward {
			q.Before = p.Entries[0].ID
		} else {
			q.After = p.Entries[len(p.Entries)-1].ID
		}
	}
	return out, false, nil
}

// queryErr turns a query the store refused (an oversized full-text
// search) into the error XEP-0313 names for a query the server will not run.
func queryErr(err error) error {
	if errors.Is(err, xeps.ErrBadQuery) {
		return stanza.Errorf("not-acceptable", "the search is too large; use fewer words")
	}
	return err
}

// withResource reports whether the archived message data was sent by or to
// the full JID.
func withResource(data []byte, full string) bool {
	el, err := stanza.ParseElement(data)
	if err != nil {
		return false
	}
	return el.Get("from") == full || el.Get("to") == full
}

// result wraps one archived message as XEP-0313 §4.2 says.
func (a *archive) result(owner stanza.JID, to string, req *request, e xeps.LogEntry) (*stanza.Element, error) {
	orig, err := stanza.ParseElement(e.Data)
	if err != nil {
		return nil, err
	}
	toClient(orig)
	res := stanza.New(req.ns, "result").Set("id", e.ID.String())
	if req.queryID != "" {
		res.Set("queryid", req.queryID)
	}
	res.Append(stanza.New(NSForward, "forwarded").Append(
		stanza.New(stanza.NSDelay, "delay").Set("stamp", e.Time.UTC().Format(stampFormat)),
		orig))
	return stanza.New(stanza.NSClient, "message").
		Set("from", owner.String()).
		Set("to", to).
		Set("id", e.ID.String()).
		Append(res), nil
}

// toClient rewrites a message received over s2s (jabber:server) into the
// client namespace, for forwarding to a client.
func toClient(el *stanza.Element) {
	if el.Space == stanza.NSServer {
		el.Space = stanza.NSClient
	}
	for _, c := range el.Children() {
		if c.Space == stanza.NSServer {
			toClient(c)
		}
	}
}

// metadata answers the urn:xmpp:mam:2#extended metadata request: the first
// and last entries of the archive.
func (a *archive) metadata(ctx context.Context, iq *stanza.IQ) (*stanza.Element, error) {
	owner, serr := ownArchive(iq)
	if serr != nil {
		return nil, serr
	}
	md := stanza.New(NS, "metadata")
	first, err := a.log.Query(ctx, owner.String(), xeps.LogQuery{Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(first.Entries) == 0 {
		return md, nil
	}
	last, err := a.log.Query(ctx, owner.String(), xeps.LogQuery{Limit: 1, Backward: true})
	if err != nil {
		return nil, err
	}
	for _, p := range []struct {
		name string
		e    xeps.LogEntry
	}{{"start", first.Entries[0]}, {"end", last.Entries[0]}} {
		md.Append(stanza.New(NS, p.name).Set("id", p.e.ID.String()).Set("timestamp", p.e.Time.UTC().Format(stampFormat)))
	}
	return md, nil
}
