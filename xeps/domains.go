package xeps

import (
	"context"
	"fmt"
	"slices"

	"github.com/xmppd/xmppd/stanza"
)

// A service domain is a domain a module serves itself (conference.<domain>,
// upload.<domain>, an external component's): the router hands it every
// stanza addressed to it or to a JID at it, federation accepts stanzas for
// it, and the server's disco#items lists it (docs/design/006-service-domains.md).

// DomainHandler gets every stanza routed to a service domain ('from'
// stamped or checked, 'to' parsed). It answers through Host.Send.
type DomainHandler func(ctx context.Context, el *stanza.Element, to stanza.JID)

type service struct {
	domain, parent, module string
	handle                 DomainHandler
}

type services struct {
	list []service // registration order (disco#items lists them so)
}

// ServeDomain makes the registering module the server of domain, a service
// of parent (one of the server's domains: its config, access and storage
// are the parent's). It fails when domain is already served — by the
// server or by another module — as net/http's ServeMux refuses a second
// handler for a pattern, naming who has it.
func (h *Host) ServeDomain(domain, parent string, handle DomainHandler) error {
	d, err := stanza.ParseJID(domain)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
		return fmt.Errorf("service domain %q is not a domain", domain)
	}
	domain = d.Domainpart()
	if !h.IsLocal(parent) {
		return fmt.Errorf("service domain %s: its parent %q is not a domain of this server", domain, parent)
	}
	if h.IsLocal(domain) {
		return fmt.Errorf("service domain %s is one of the server's own domains (config: domains)", domain)
	}
	if i := slices.IndexFunc(h.services.list, func(s service) bool { return s.domain == domain }); i >= 0 {
		return fmt.Errorf("service domain %s is already served by module %s", domain, h.services.list[i].module)
	}
	h.services.list = append(h.services.list, service{domain: domain, parent: parent, module: h.module, handle: handle})
	return nil
}

// ServiceDomain returns the handler of a service domain, or nil.
func (h *Host) ServiceDomain(domain string) DomainHandler {
	for i := range h.services.list {
		if h.services.list[i].domain == domain {
			return h.services.list[i].handle
		}
	}
	return nil
}

// ServiceDomains lists the service domains of parent, in registration order.
func (h *Host) ServiceDomains(parent string) []string {
	var out []string
	for _, s := range h.services.list {
		if s.parent == parent {
			out = append(out, s.domain)
		}
	}
	return out
}

// Serves reports whether domain is served here: one of the server's
// domains or a service domain. Federation accepts stanzas for these.
func (h *Host) Serves(domain string) bool {
	return h.IsLocal(domain) || h.ServiceDomain(domain) != nil
}
