package sipnet

import (
	"bytes"
	"testing"

	"github.com/imsue/imsue/internal/testenv"
)

var frameSeeds = []string{
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bKabc\r\nCSeq: 1 REGISTER\r\nContent-Length: 5\r\n\r\nhello",
	"NOTIFY sip:u@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:7200;branch=z9hG4bKn1\r\nl: 0\r\n\r\n",
	"SIP/2.0 200 OK\r\nl: 3\r\n\r\nabc",
}

// FuzzFrame: framing never panics, never claims more than it has, and a
// framed message frames to itself.
func FuzzFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
		f.Add([]byte("\r\n\r\n" + s + s[:len(s)/2]))
	}
	testenv.AddSeedFiles(f, "testdata/rfc4475/*.sip")
	f.Fuzz(func(t *testing.T, buf []byte) {
		skip, size, err := Frame(buf)
		if err != nil {
			return
		}
		if skip < 0 || size < 0 || skip+size > len(buf) {
			t.Fatalf("Frame = %d, %d over %d bytes", skip, size, len(buf))
		}
		if size == 0 {
			return
		}
		msg := buf[skip : skip+size]
		s2, z2, err := Frame(msg)
		if err != nil || s2 != 0 || z2 != size {
			t.Fatalf("re-framing the message: %d, %d, %v; want 0, %d", s2, z2, err, size)
		}
		if !bytes.Contains(msg, []byte("\r\n\r\n")) {
			t.Fatal("a framed message without the end of its header")
		}
	})
}
