//go:build linux

package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Packet is one captured Ethernet frame.
type Packet struct {
	Time     time.Time
	Outgoing bool // sent by this namespace (PACKET_OUTGOING)
	Data     []byte
}

// Capture records the frames of one interface with an AF_PACKET socket, as
// tcpdump does, without a process of its own.
type Capture struct {
	f        *os.File
	done     chan struct{}
	stopping atomic.Bool

	mu   sync.Mutex
	pkts []Packet
	err  error
}

// Capture starts capturing every frame (ETH_P_ALL) on the namespace's
// interface ifname, in both directions.
func (n *NS) Capture(ifname string) (*Capture, error) {
	var fd int
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c := &Capture{f: os.NewFile(uintptr(fd), "capture:"+ifname), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Capture) loop() {
	defer close(c.done)
	rc, err := c.f.SyscallConn()
	if err != nil {
		c.fail(err)
		return
	}
	buf := make([]byte, 65536)
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if !c.stopping.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
				c.fail(err)
				return
			}
			// Stop: take what the kernel queued before it, then end.
			rc.Control(func(fd uintptr) {
				for {
					n, from, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
					if err != nil {
						return
					}
					c.add(buf[:n], from)
				}
			})
			return
		}
		if rerr != nil {
			c.fail(rerr)
			return
		}
		c.add(buf[:n], from)
	}
}

func (c *Capture) add(frame []byte, from unix.Sockaddr) {
	p := Packet{Time: time.Now(), Data: append([]byte(nil), frame...)}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		p.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
	}
	c.mu.Lock()
	c.pkts = append(c.pkts, p)
	c.mu.Unlock()
}

func (c *Capture) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// Stop ends the capture and returns its frames, including those the kernel
// had queued for the socket and the reader had not taken yet.
func (c *Capture) Stop() ([]Packet, error) {
	c.stopping.Store(true)
	c.f.SetReadDeadline(time.Now()) // wakes the reader, which drains and ends
	<-c.done
	c.f.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkts, c.err
}

// WritePCAP writes frames in the classic pcap format (LINKTYPE_ETHERNET),
// which tshark and Wireshark read.
func WritePCAP(w io.Writer, pkts []Packet) error {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4) // microsecond timestamps
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535) // snaplen
	binary.LittleEndian.PutUint32(h[20:], 1)     // LINKTYPE_ETHERNET
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	for _, p := range pkts {
		var r [16]byte
		binary.LittleEndian.PutUint32(r[0:], uint32(p.Time.Unix()))
		binary.LittleEndian.PutUint32(r[4:], uint32(p.Time.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(r[8:], uint32(len(p.Data)))
		binary.LittleEndian.PutUint32(r[12:], uint32(len(p.Data)))
		if _, err := w.Write(r[:]); err != nil {
			return err
		}
		if _, err := w.Write(p.Data); err != nil {
			return err
		}
	}
	return nil
}

// IPPacket is the IP layer of a frame.
type IPPacket struct {
	Src, Dst netip.Addr
	// Proto is the IPv4 protocol or the IPv6 next header after the fixed
	// header (ESP = 50, TCP = 6, UDP = 17; extension headers are not
	// followed: the lab sends none).
	Proto   uint8
	Payload []byte
}

// ParseFrame extracts the IP packet of an Ethernet frame (untagged, IPv4 or
// IPv6). ok is false for anything else (ARP, truncated or malformed frames).
func ParseFrame(frame []byte) (p IPPacket, ok bool) {
	if len(frame) < 14 {
		return p, false
	}
	b := frame[14:]
	switch binary.BigEndian.Uint16(frame[12:]) {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return p, false
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || total < ihl || total > len(b) {
			return p, false
		}
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		p.Proto = b[9]
		p.Payload = b[ihl:total]
		return p, true
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return p, false
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if 40+plen > len(b) {
			return p, false
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		p.Proto = b[6]
		p.Payload = b[40 : 40+plen]
		return p, true
	}
	return p, false
}
