package stanza

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestDecoderReleasesBufferWhenIdle: between elements, with nothing
// buffered, the decoder holds no read buffer (issue 5: memory per idle
// session); reads split at every byte, and errors that come with data, still
// decode the same elements.
func TestDecoderReleasesBufferWhenIdle(t *testing.T) {
	const in = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'>` +
		`<message to='a@b' id='1'><body>hi &amp; bye</body></message> <iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>`
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(in) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"data+err": func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
		"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(r(), DefaultLimits)
			if _, err := d.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				el, err := d.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(el.AppendXML(nil, NSClient)))
			}
			want := []string{
				`<message to='a@b' id='1'><body>hi &amp; bye</body></message>`,
				`<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>`,
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("got %q, want %q", got, want)
			}
			if d.rb != nil || d.scratch != nil || d.attrs != nil {
				t.Fatal("an idle decoder still holds its read buffer")
			}
		})
	}
}
