package main

import (
	"github.com/xmppd/xmppd/presence"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/xeps"
	"github.com/xmppd/xmppd/xeps/blocking"
	"github.com/xmppd/xmppd/xeps/caps"
	"github.com/xmppd/xmppd/xeps/carbons"
	"github.com/xmppd/xmppd/xeps/csi"
	"github.com/xmppd/xmppd/xeps/disco"
	"github.com/xmppd/xmppd/xeps/entitytime"
	"github.com/xmppd/xmppd/xeps/lastactivity"
	"github.com/xmppd/xmppd/xeps/mam"
	"github.com/xmppd/xmppd/xeps/offline"
	"github.com/xmppd/xmppd/xeps/ping"
	"github.com/xmppd/xmppd/xeps/private"
	"github.com/xmppd/xmppd/xeps/push"
	"github.com/xmppd/xmppd/xeps/vcard"
	swversion "github.com/xmppd/xmppd/xeps/version"
)

// modules is THE ordered list of enabled modules, read top to bottom at
// startup (never a map: the order must not change between runs). A module
// with settings gets its own section of cfg (cfg.Offline, ...); a module
// that needs another gets it passed here (presence gets the roster).
func modules(cfg Config) []xeps.Module {
	rosterMod := roster.New()
	return []xeps.Module{
		rosterMod,                  // RFC 6121 §2-3 rosters and subscriptions, XEP-0237 roster versioning
		presence.New(rosterMod),    // RFC 6121 §4 presence (subscriptions are the roster's)
		caps.New(),                 // XEP-0115: clients' entity capabilities, verified and cached (the server's own are disco's)
		push.New(cfg.Push),         // XEP-0357: Push Notifications; before offline, whose Undeliverable hook consumes what push must see
		offline.New(cfg.Offline),   // XEP-0160: offline messages (with XEP-0203 delay, XEP-0334 hints)
		blocking.New(cfg.Blocking), // XEP-0191: Blocking Command
		mam.New(cfg.Archive),       // XEP-0313: Message Archive Management (XEP-0359 stanza-id, XEP-0441 prefs, XEP-0431 search); after blocking, so that what it drops is not archived
		carbons.New(),              // XEP-0280: Message Carbons; after blocking (nothing blocked is copied) and after mam (the copies carry its stanza-ids)
		csi.New(cfg.CSI),           // XEP-0352: Client State Indication; its ForSession hook after push's (a hibernated session is notified whatever it holds)
		vcard.New(cfg.VCard),       // XEP-0054: vcard-temp
		private.New(cfg.Private),   // XEP-0049: Private XML Storage
		lastactivity.Module{},      // XEP-0012: Last Activity
		ping.Module{},              // XEP-0199: XMPP Ping
		swversion.Module{Software: "xmppd", Version: buildVersion()}, // XEP-0092: Software Version
		entitytime.Module{}, // XEP-0202: Entity Time
		disco.Module{},      // XEP-0030: Service Discovery (lists what the others registered)
	}
}
