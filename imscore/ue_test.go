package imscore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"

	"github.com/imsue/imsue/digest"
	"github.com/imsue/imsue/internal/vectors"
	"github.com/imsue/imsue/ipsec"
	"github.com/imsue/imsue/isim/milenage"
	"github.com/imsue/imsue/mt"
)

// This file is a hand-built UE for the core's tests: raw SIP text over UDP
// and TCP sockets, MILENAGE for the ISIM side and package digest for the
// response. It is deliberately not sipclient: the tests are about the core.

const (
	testDomain = "ims.mnc001.mcc001.3gppnetwork.org"
	testIMPI   = "001010123456789@" + testDomain
	testIMPU   = "sip:001010123456789@" + testDomain
	testIMPU2  = "tel:+15551234567"
	wait       = 2 * time.Second
)

// testSubscriber is TS 35.208 test set 1's K and OPc.
func testSubscriber(t testing.TB) Subscriber {
	set1 := vectors.Milenage()[0]
	return Subscriber{
		IMPI: testIMPI, IMPUs: []string{testIMPU, testIMPU2},
		K: set1.K, OPc: set1.OPc,
		AMF: [2]byte{0x80, 0x00}, Password: "secret",
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("IMSCORE_TRACE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startCore starts a core (on 127.0.0.1 unless cfg.Addr) with an
// ipsec.Recorder unless cfg
// sets IPsec.
func startCore(t testing.TB, cfg Config) (*Core, *ipsec.Recorder) {
	t.Helper()
	if cfg.Domain == "" {
		cfg.Domain = testDomain
	}
	if cfg.Subscribers == nil {
		cfg.Subscribers = []Subscriber{testSubscriber(t)}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	rec, _ := cfg.IPsec.(*ipsec.Recorder)
	if cfg.IPsec == nil {
		rec = &ipsec.Recorder{}
		cfg.IPsec = rec
	}
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.checkInvariants(); err != nil {
			t.Errorf("P-CSCF state: %v", err)
		}
		if rec != nil && len(rec.Live()) != c.liveSets() {
			t.Errorf("backend holds %d sets, the core %d", len(rec.Live()), c.liveSets())
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if rec != nil && len(rec.Live()) != 0 {
			t.Errorf("after Close, SA sets still live in the backend: %v", rec.Live())
		}
	})
	return c, rec
}

// rx is one message a test UE received.
type rx struct {
	msg  sip.Message
	from netip.AddrPort
	conn net.Conn // TCP: the connection it came on
	sock *net.UDPConn
}

type testUE struct {
	t         testing.TB
	c         *Core
	transport string // "UDP" or "TCP"
	ip        netip.Addr
	sub       Subscriber
	mil       *milenage.Cipher
	lastSQN   uint64 // the highest SQN the test ISIM accepted
	algs      string // Security-Client text template without spi/ports; "" = default

	unprot         *net.UDPConn
	us, uc         *net.UDPConn
	usTCP          *net.TCPListener
	portUC, portUS uint16
	spiUC, spiUS   uint32
	tcpUnprot      net.Conn
	tcpProt        map[uint16]net.Conn // by local port_uc

	// The established agreement, over which re-registrations travel.
	ucOld     *net.UDPConn
	verifyOld string

	callID, fromTag string
	cseq            int
	expires         int

	// From the last 401.
	ch        *digest.Challenge
	secServer []string
	server    []mt.Mechanism
	res       []byte
	ck, ik    [16]byte
	nc        uint32

	resps, reqs chan rx
	mu          sync.Mutex
	conns       []io.Closer
	done        chan struct{}
}

func newUE(t testing.TB, c *Core, transport string) *testUE {
	t.Helper()
	sub := testSubscriber(t)
	u := &testUE{
		t: t, c: c, transport: transport, ip: c.Addr().Addr(), // the core's loopback family
		sub: sub, mil: milenage.New(sub.K, sub.OPc),
		callID: "ue-" + randHex(8), fromTag: randHex(4), cseq: 1, expires: 600000,
		resps: make(chan rx, 64), reqs: make(chan rx, 64), done: make(chan struct{}),
		tcpProt: map[uint16]net.Conn{},
	}
	u.unprot = u.listenUDP(0)
	u.us, u.usTCP = u.listenBoth()
	u.portUS = port(u.us.LocalAddr())
	go u.acceptLoop(u.usTCP)
	u.newClientPort()
	u.spiUC, u.spiUS = randSPI(), randSPI()
	t.Cleanup(u.close)
	return u
}

func (u *testUE) close() {
	close(u.done)
	u.usTCP.Close()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.conns {
		c.Close()
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randSPI() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])%0x7fff0000 + 0x10000
}

func port(a net.Addr) uint16 {
	switch a := a.(type) {
	case *net.UDPAddr:
		return uint16(a.Port)
	case *net.TCPAddr:
		return uint16(a.Port)
	}
	return 0
}

func (u *testUE) listenUDP(p uint16) *net.UDPConn {
	u.t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(u.ip, p)))
	if err != nil {
		u.t.Fatal(err)
	}
	u.track(c)
	go u.readUDP(c)
	return c
}

// listenBoth binds one ephemeral port for both UDP and TCP, as port_us
// must be.
func (u *testUE) listenBoth() (*net.UDPConn, *net.TCPListener) {
	u.t.Helper()
	uc, l := u.bindBoth(net.ListenConfig{})
	return uc, l.(*net.TCPListener)
}

// bindBoth binds an ephemeral UDP port, reads it, and listens on the same
// TCP port with lc. The kernel picks the UDP port; the same TCP port may
// already be taken by another process, so it retries with another.
func (u *testUE) bindBoth(lc net.ListenConfig) (*net.UDPConn, net.Listener) {
	u.t.Helper()
	var lastErr error
	for range 20 {
		uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(u.ip, 0)))
		if err != nil {
			u.t.Fatal(err)
		}
		l, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(u.ip, port(uc.LocalAddr())).String())
		if err != nil {
			uc.Close()
			lastErr = err
			continue
		}
		u.track(uc)
		go u.readUDP(uc)
		return uc, l
	}
	u.t.Fatalf("no port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}

// newClientPort picks a new port_uc and new SPIs, as a re-registration and
// a failure answer must; the established ones stay for sending over.
func (u *testUE) newClientPort() {
	u.t.Helper()
	if u.transport == "TCP" {
		u.uc = u.reserveTCP()
	} else {
		u.uc = u.listenUDP(0)
	}
	u.portUC = port(u.uc.LocalAddr())
	u.spiUC, u.spiUS = randSPI(), randSPI()
}

// reusePortControl sets SO_REUSEPORT, so that the test UE can dial TCP
// from a port it also listens on.
func reusePortControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
		return err
	}
	return serr
}

// reserveTCP binds port_uc for UDP and reserves the same TCP port with an
// SO_REUSEPORT listener, kept until the UE closes: the protected
// connection is dialled from that port later, and meanwhile the kernel
// must not hand it to another test's connection (go test runs packages in
// parallel; a collision failed the dial with EADDRINUSE).
func (u *testUE) reserveTCP() *net.UDPConn {
	u.t.Helper()
	uc, l := u.bindBoth(net.ListenConfig{Control: reusePortControl})
	u.track(l)
	return uc
}

func (u *testUE) readUDP(c *net.UDPConn) {
	buf := make([]byte, 65535)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		u.deliver(rx{msg: msg, from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), sock: c})
	}
}

func (u *testUE) acceptLoop(l *net.TCPListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		u.track(c)
		go u.readTCP(c)
	}
}

func (u *testUE) track(c io.Closer) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.conns = append(u.conns, c)
}

func (u *testUE) readTCP(c net.Conn) {
	stream := sip.NewParser().NewSIPStream()
	buf := make([]byte, 65535)
	from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		_ = stream.ParseSIPStream(buf[:n], func(msg sip.Message) {
			u.deliver(rx{msg: msg, from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), conn: c})
		})
	}
}

func (u *testUE) deliver(r rx) {
	ch := u.reqs
	if _, ok := r.msg.(*sip.Response); ok {
		ch = u.resps
	}
	select {
	case ch <- r:
	case <-u.done:
	}
}

// response waits for the next response.
func (u *testUE) response(d time.Duration) (rx, *sip.Response) {
	u.t.Helper()
	select {
	case r := <-u.resps:
		return r, r.msg.(*sip.Response)
	case <-time.After(d):
		u.t.Fatalf("no response within %v", d)
	}
	return rx{}, nil
}

// noResponse checks that nothing answers within d.
func (u *testUE) noResponse(d time.Duration) {
	u.t.Helper()
	select {
	case r := <-u.resps:
		u.t.Fatalf("unexpected response %s", r.msg.(*sip.Response).StartLine())
	case <-time.After(d):
	}
}

// request waits for the next request the core sends the UE.
func (u *testUE) request(d time.Duration) (rx, *sip.Request) {
	u.t.Helper()
	select {
	case r := <-u.reqs:
		return r, r.msg.(*sip.Request)
	case <-time.After(d):
		u.t.Fatalf("no request within %v", d)
	}
	return rx{}, nil
}

// securityClient is the UE's offer: hand-written, several mechanisms.
func (u *testUE) securityClient() string {
	pairs := u.algs
	if pairs == "" {
		pairs = "alg=hmac-sha-1-96;ealg=aes-cbc|alg=hmac-md5-96;ealg=null"
	}
	var out []string
	for _, p := range strings.Split(pairs, "|") {
		out = append(out, fmt.Sprintf("ipsec-3gpp;%s;prot=esp;mod=trans;spi-c=%d;spi-s=%d;port-c=%d;port-s=%d", p, u.spiUC, u.spiUS, u.portUC, u.portUS))
	}
	return strings.Join(out, ", ")
}

// regMsg is one REGISTER to build.
type regMsg struct {
	auth     string // Authorization value; "" = the initial empty one
	verify   string // Security-Verify; "" = none
	client   string // Security-Client; "" = the UE's current offer; "-" = none
	expires  int    // -1 = the UE's default
	rport    bool
	noAuth   bool
	extraHdr []string
}

func (u *testUE) registerText(m regMsg) string {
	exp := u.expires
	if m.expires >= 0 {
		exp = m.expires
	}
	t := u.transport
	rport := ""
	if m.rport {
		rport = ";rport"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:%s SIP/2.0\r\n", testDomain)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK%s%s\r\n", t, u.hp(u.portUS), randHex(6), rport)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <%s>;tag=%s\r\n", u.sub.IMPUs[0], u.fromTag)
	fmt.Fprintf(&b, "To: <%s>\r\n", u.sub.IMPUs[0])
	fmt.Fprintf(&b, "Call-ID: %s\r\n", u.callID)
	fmt.Fprintf(&b, "CSeq: %d REGISTER\r\n", u.cseq)
	tp := ""
	if t == "TCP" {
		tp = ";transport=tcp"
	}
	fmt.Fprintf(&b, "Contact: <sip:001010123456789@%s%s>;expires=%d;+sip.instance=\"<urn:gsma:imei:35209900-176148-0>\"\r\n", u.hp(u.portUS), tp, exp)
	fmt.Fprintf(&b, "Expires: %d\r\n", exp)
	fmt.Fprintf(&b, "Supported: path, sec-agree\r\nRequire: sec-agree\r\nProxy-Require: sec-agree\r\n")
	switch m.client {
	case "":
		fmt.Fprintf(&b, "Security-Client: %s\r\n", u.securityClient())
	case "-":
	default:
		fmt.Fprintf(&b, "Security-Client: %s\r\n", m.client)
	}
	if m.verify != "" {
		fmt.Fprintf(&b, "Security-Verify: %s\r\n", m.verify)
	}
	if !m.noAuth {
		auth := m.auth
		if auth == "" {
			auth = fmt.Sprintf(`Digest username="%s", realm="%s", uri="sip:%s", nonce="", response=""`, u.sub.IMPI, testDomain, testDomain)
		}
		fmt.Fprintf(&b, "Authorization: %s\r\n", auth)
	}
	for _, h := range m.extraHdr {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// sendUnprotected sends text to the core's unprotected address.
func (u *testUE) sendUnprotected(text string) {
	u.t.Helper()
	if u.transport == "TCP" {
		if u.tcpUnprot == nil {
			c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(u.c.Addr()))
			if err != nil {
				u.t.Fatal(err)
			}
			u.tcpUnprot = c
			u.track(c)
			go u.readTCP(c)
		}
		if _, err := u.tcpUnprot.Write([]byte(text)); err != nil {
			u.t.Fatal(err)
		}
		return
	}
	if _, err := u.unprot.WriteToUDPAddrPort([]byte(text), u.c.Addr()); err != nil {
		u.t.Fatal(err)
	}
}

// sendProtected sends text from the new port_uc to port_ps.
func (u *testUE) sendProtected(text string) { u.t.Helper(); u.sendFrom(u.uc, text) }

// sendProtectedOld sends text over the established agreement's port_uc.
func (u *testUE) sendProtectedOld(text string) { u.t.Helper(); u.sendFrom(u.ucOld, text) }

func (u *testUE) sendFrom(uc *net.UDPConn, text string) {
	u.t.Helper()
	dst := netip.AddrPortFrom(u.c.Addr().Addr(), u.c.PortPS())
	if u.transport == "TCP" {
		p := port(uc.LocalAddr())
		conn := u.tcpProt[p]
		if conn == nil {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(u.ip, p)), Control: reusePortControl}
			c, err := d.Dial("tcp", dst.String())
			if err != nil {
				u.t.Fatal(err)
			}
			conn = c
			u.tcpProt[p] = c
			u.track(c)
			go u.readTCP(c)
		}
		if _, err := conn.Write([]byte(text)); err != nil {
			u.t.Fatal(err)
		}
		return
	}
	if _, err := uc.WriteToUDPAddrPort([]byte(text), dst); err != nil {
		u.t.Fatal(err)
	}
}

// challenge processes a 401 as a UE: the WWW-Authenticate, the nonce, AKA
// on the test ISIM, and Security-Server. It returns the AKA outcome:
// "ok", "mac" or "sync" (with the AUTS for the latter).
func (u *testUE) challenge(resp *sip.Response) (string, []byte) {
	u.t.Helper()
	if resp.StatusCode != 401 {
		u.t.Fatalf("want 401, got %s", resp.StartLine())
	}
	www := resp.GetHeader("WWW-Authenticate")
	if www == nil {
		u.t.Fatal("401 without WWW-Authenticate")
	}
	ch, err := digest.ParseChallenge(www.Value())
	if err != nil {
		u.t.Fatalf("WWW-Authenticate %q: %v", www.Value(), err)
	}
	if ch.CK != "" || ch.IK != "" {
		u.t.Errorf("the 401 leaks ck/ik to the UE: %q", www.Value())
	}
	u.ch = ch
	u.nc = 0
	u.secServer = nil
	for _, h := range resp.GetHeaders("Security-Server") {
		u.secServer = append(u.secServer, h.Value())
	}
	if len(u.secServer) > 0 {
		u.server, err = mt.ParseSecurity(u.secServer...)
		if err != nil {
			u.t.Fatalf("Security-Server %q: %v", u.secServer, err)
		}
	}
	return u.aka(ch)
}

// aka runs the test ISIM on an AKA challenge (and records a digest one).
func (u *testUE) aka(ch *digest.Challenge) (string, []byte) {
	u.t.Helper()
	u.ch = ch
	if !strings.HasPrefix(strings.ToUpper(ch.Algorithm), "AKA") {
		return "ok", nil
	}
	rnd, autn, err := digest.AKANonce(ch.Nonce)
	if err != nil {
		u.t.Fatalf("nonce: %v", err)
	}
	var c milenage.Challenge
	u.mil.Challenge(&rnd, &autn, &c)
	if !c.MACOK {
		return "mac", nil
	}
	sqn := getSQN(c.SQN)
	if sqn>>indBits <= u.lastSQN>>indBits {
		var ms [6]byte
		putSQN(&ms, u.lastSQN)
		auts := u.mil.AUTS(rnd, ms)
		return "sync", auts[:]
	}
	u.lastSQN = sqn
	u.res = append([]byte(nil), c.RES[:]...)
	u.ck, u.ik = c.CK, c.IK
	return "ok", nil
}

// authorization answers the last challenge. kind: "ok" (correct), "wrong",
// "mac" (empty response), "sync" (auts), "sync-unpadded" (auts in base64
// without padding, as some UEs send it).
func (u *testUE) authorization(kind string, auts []byte) string {
	u.t.Helper()
	ch := u.ch
	password := u.res
	switch {
	case strings.EqualFold(ch.Algorithm, digest.AKAv2MD5):
		password = digest.AKAv2Password(u.res, u.ik, u.ck)
	case strings.EqualFold(ch.Algorithm, digest.MD5) || ch.Algorithm == "":
		password = []byte(u.sub.Password)
	}
	if kind == "sync" || kind == "sync-unpadded" || kind == "mac" {
		password = nil
	}
	qop := ""
	if len(ch.QOP) > 0 {
		qop = ch.QOP[len(ch.QOP)-1] // exercise auth-int when offered last
	}
	u.nc++
	a := &digest.Authorization{
		Username: u.sub.IMPI, Realm: ch.Realm, Nonce: ch.Nonce, URI: "sip:" + testDomain,
		Algorithm: ch.Algorithm, Opaque: ch.Opaque, HasOpaque: ch.HasOpaque,
	}
	if qop != "" {
		a.QOP, a.NC, a.CNonce = qop, u.nc, randHex(4)
	}
	a.Response = digest.Response(digest.Credentials{
		Username: a.Username, Realm: a.Realm, Password: password, Method: "REGISTER",
		URI: a.URI, Nonce: a.Nonce, QOP: a.QOP, NC: a.NC, CNonce: a.CNonce,
	})
	switch kind {
	case "wrong":
		a.Response = strings.Repeat("0", 32)
	case "mac":
		a.Response = ""
	case "sync":
		a.AUTS, a.HasAUTS = base64.StdEncoding.EncodeToString(auts), true
	case "sync-unpadded":
		a.AUTS, a.HasAUTS = base64.RawStdEncoding.EncodeToString(auts), true
	}
	return a.String()
}

// register runs a full IMS AKA registration (or, when registered, a
// re-registration over the established agreement with a new port_uc and
// SPIs) and returns the 200 with where it came from.
func (u *testUE) register() (rx, *sip.Response) {
	u.t.Helper()
	if u.ucOld == nil {
		u.sendUnprotected(u.registerText(regMsg{expires: -1}))
	} else {
		u.newClientPort()
		u.sendProtectedOld(u.registerText(regMsg{expires: -1, verify: u.verifyOld}))
	}
	_, resp := u.response(wait)
	if got, _ := u.challenge(resp); got != "ok" {
		u.t.Fatalf("AKA: %s", got)
	}
	u.cseq++
	u.sendProtected(u.registerText(regMsg{expires: -1, auth: u.authorization("ok", nil), verify: strings.Join(u.secServer, ", ")}))
	r, resp := u.response(wait)
	if resp.StatusCode != 200 {
		u.t.Fatalf("protected REGISTER: %s (%s)", resp.StartLine(), headerValues(resp, "Warning"))
	}
	u.cseq++
	u.ucOld, u.verifyOld = u.uc, strings.Join(u.secServer, ", ")
	return r, resp
}

// chosen returns the Security-Server entry the UE would choose.
func (u *testUE) chosen() mt.Mechanism {
	u.t.Helper()
	offer, err := mt.ParseSecurity(u.securityClient())
	if err != nil {
		u.t.Fatal(err)
	}
	m, err := mt.Choose(offer, u.server)
	if err != nil {
		u.t.Fatal(err)
	}
	return m
}

// subscribeText builds a reg-event SUBSCRIBE (no Security-Verify, no
// sec-agree: TS 24.229 for non-REGISTER requests).
func (u *testUE) subscribeText(callID, toTag string, cseq, expires int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SUBSCRIBE %s SIP/2.0\r\n", u.sub.IMPUs[0])
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=z9hG4bK%s\r\n", u.transport, u.hp(u.portUS), randHex(6))
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nRoute: <sip:%s;lr>, <sip:orig@scscf.%s;lr>\r\n", netip.AddrPortFrom(u.c.Addr().Addr(), u.c.PortPS()), testDomain)
	fmt.Fprintf(&b, "From: <%s>;tag=sub%s\r\n", u.sub.IMPUs[0], u.fromTag)
	to := ""
	if toTag != "" {
		to = ";tag=" + toTag
	}
	fmt.Fprintf(&b, "To: <%s>%s\r\n", u.sub.IMPUs[0], to)
	fmt.Fprintf(&b, "Call-ID: %s\r\nCSeq: %d SUBSCRIBE\r\n", callID, cseq)
	tp := ""
	if u.transport == "TCP" {
		tp = ";transport=tcp"
	}
	fmt.Fprintf(&b, "Contact: <sip:001010123456789@%s%s>\r\n", u.hp(u.portUS), tp)
	fmt.Fprintf(&b, "Event: reg\r\nAccept: application/reginfo+xml\r\nExpires: %d\r\nContent-Length: 0\r\n\r\n", expires)
	return b.String()
}

// answer sends a response to a request the core sent: UDP from port_us to
// the Via sent-by, TCP on its connection.
func (u *testUE) answer(r rx, req *sip.Request, code int) {
	u.t.Helper()
	resp := sip.NewResponseFromRequest(req, code, "OK", nil)
	text := []byte(resp.String())
	if r.conn != nil {
		if _, err := r.conn.Write(text); err != nil {
			u.t.Fatal(err)
		}
		return
	}
	// UDP: from port_uc to the Via sent-by (the P-CSCF's port_ps); without
	// SAs (MD5) from the registered flow.
	via := req.Via()
	dst := netip.AddrPortFrom(netip.MustParseAddr(via.Host), uint16(via.Port))
	from := u.ucOld
	if from == nil {
		from = u.unprot
	}
	if _, err := from.WriteToUDPAddrPort(text, dst); err != nil {
		u.t.Fatal(err)
	}
}

func (c *Core) liveSets() int {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return len(c.p.sets)
}

// hp formats the UE's address with port p for Via and Contact.
func (u *testUE) hp(p uint16) string { return netip.AddrPortFrom(u.ip, p).String() }
