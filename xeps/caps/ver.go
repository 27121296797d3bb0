package caps

import (
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/xmppd/xmppd/stanza"
)

// Namespaces read in a disco#info answer.
const (
	NS     = "http://jabber.org/protocol/caps"
	NSInfo = "http://jabber.org/protocol/disco#info"
	NSData = "jabber:x:data"
)

// hashes are the hash functions of the IANA registry XEP-0115 §5.1 names
// that we verify ("sha-1" is the one every entity uses). A ver under another
// hash cannot be verified, so it is not cached.
var hashes = map[string]func() hash.Hash{
	"sha-1":   sha1.New,
	"sha-224": sha256.New224,
	"sha-256": sha256.New,
	"sha-384": sha512.New384,
	"sha-512": sha512.New,
}

// Supported reports whether ver strings under this hash name can be verified.
func Supported(hashName string) bool { return hashes[hashName] != nil }

// ErrIllFormed is a disco#info answer that XEP-0115 §5.4 step 3 says to
// treat as ill-formed: its ver is never cached.
var ErrIllFormed = errors.New("caps: ill-formed disco#info")

type identity struct{ category, typ, lang, name string }

// Ver computes the verification string of XEP-0115 §5.1 of a disco#info
// <query/> (identities, features and XEP-0128 extended forms) under the hash
// hashName, applying the checks of §5.4 step 3: duplicate identities,
// duplicate features, two forms with the same FORM_TYPE or a FORM_TYPE with
// differing values make the answer ill-formed (ErrIllFormed); a form whose
// FORM_TYPE field is not hidden, or that has none, is left out.
func Ver(hashName string, query *stanza.Element) (string, error) {
	newHash := hashes[hashName]
	if newHash == nil {
		return "", fmt.Errorf("caps: unsupported hash %q", hashName)
	}
	s, err := verString(query)
	if err != nil {
		return "", err
	}
	h := newHash()
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// verString builds the string S of §5.1 that Ver hashes.
func verString(query *stanza.Element) (string, error) {
	var ids []identity
	var features []string
	type form struct {
		formType string
		fields   [][]string // var, then the values
	}
	var forms []form
	for _, c := range query.Children() {
		switch {
		case c.Is(NSInfo, "identity"):
			ids = append(ids, identity{c.Get("category"), c.Get("type"), c.Lang(), c.Get("name")})
		case c.Is(NSInfo, "feature"):
			features = append(features, c.Get("var"))
		case c.Is(NSData, "x"):
			f := form{}
			hidden, hasType := false, false
			for _, fe := range c.Children() {
				if !fe.Is(NSData, "field") {
					continue
				}
				var values []string
				for _, v := range fe.Children() {
					if v.Is(NSData, "value") {
						values = append(values, v.Text())
					}
				}
				if fe.Get("var") == "FORM_TYPE" {
					if hasType {
						return "", fmt.Errorf("%w: two FORM_TYPE fields in one form", ErrIllFormed)
					}
					hasType, hidden = true, fe.Get("type") == "hidden"
					for _, v := range values[min(1, len(values)):] {
						if v != values[0] {
							return "", fmt.Errorf("%w: FORM_TYPE with different values", ErrIllFormed)
						}
					}
					if len(values) > 0 {
						f.formType = values[0]
					}
					continue
				}
				f.fields = append(f.fields, append([]string{fe.Get("var")}, values...))
			}
			if hasType && hidden {
				// §5.4 3.6: a FORM_TYPE that is not hidden: ignore the form.
				forms = append(forms, f)
			}
		}
	}
	slices.SortFunc(ids, func(a, b identity) int {
		return cmp.Or(strings.Compare(a.category, b.category), strings.Compare(a.typ, b.typ),
			strings.Compare(a.lang, b.lang), strings.Compare(a.name, b.name))
	})
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			return "", fmt.Errorf("%w: duplicate identity %s/%s", ErrIllFormed, ids[i].category, ids[i].typ)
		}
	}
	slices.Sort(features)
	for i := 1; i < len(features); i++ {
		if features[i] == features[i-1] {
			return "", fmt.Errorf("%w: duplicate feature %s", ErrIllFormed, features[i])
		}
	}
	slices.SortFunc(forms, func(a, b form) int { return strings.Compare(a.formType, b.formType) })
	for i := 1; i < len(forms); i++ {
		if forms[i].formType == forms[i-1].formType {
			return "", fmt.Errorf("%w: two forms of FORM_TYPE %s", ErrIllFormed, forms[i].formType)
		}
	}

	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id.category + "/" + id.typ + "/" + id.lang + "/" + id.name + "<")
	}
	for _, f := range features {
		b.WriteString(f + "<")
	}
	for _, f := range forms {
		b.WriteString(f.formType + "<")
		slices.SortStableFunc(f.fields, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
		for _, fl := range f.fields {
			b.WriteString(fl[0] + "<")
			vals := slices.Clone(fl[1:])
			slices.Sort(vals)
			for _, v := range vals {
				b.WriteString(v + "<")
			}
		}
	}
	return b.String(), nil
}
