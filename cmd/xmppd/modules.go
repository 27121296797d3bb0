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
func modules() []xeps.Module {
	return []xeps.Module{
		ping.Module{}, // XEP-0199: XMPP Ping
		swversion.Module{Software: "xmppd", Version: buildVersion()}, // XEP-0092: Software Version
		entitytime.Module{}, // XEP-0202: Entity Time
		disco.Module{},      // XEP-0030: Service Discovery (lists what the others registered)
	}
}
