package main

import (
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/disco"
	"github.com/xmppd/xmppd/xeps/entitytime"
	"github.com/xmppd/xmppd/xeps/ping"
	swversion "github.com/xmppd/xmppd/xeps/version"
)

// modules is THE ordered list of enabled modules, read top to bottom at
// startup (never a map: the order must not change between runs).
func modules(cfg Config) []xeps.Module {
	return []xeps.Module{
		// RFC 6121 roster and presence (issue 3): roster line here, then presence.
		// XEP-0160 offline messages (issue 3) here.
		// XEP-0191 blocking, XEP-0054 vcard-temp, XEP-0049 private storage, XEP-0012 last activity (issue 3) here.
		ping.Module{}, // XEP-0199: XMPP Ping
		swversion.Module{Software: "xmppd", Version: buildVersion()}, // XEP-0092: Software Version
		entitytime.Module{}, // XEP-0202: Entity Time
		disco.Module{},      // XEP-0030: Service Discovery (lists what the others registered)
	}
}
