package sipnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
)

// PcapWriter records the SIP messages of a Transport in a classic pcap file
// (LINKTYPE_RAW: each record is an IPv4 or IPv6 packet). The IP, UDP and TCP
// headers are synthetic: they carry the real addresses and ports of the
// exchange and valid checksums, but the capture is of the SIP layer as the
// endpoint sent and received it (before ESP), not of the wire. TCP messages get
// one segment each (split when larger than a segment can carry) with
// per-direction sequence numbers, so Wireshark reassembles them; there is no
// handshake.
type PcapWriter struct {
	mu  sync.Mutex
	w   io.Writer
	id  uint16
	seq map[flow]uint32
	err error
}

type flow struct{ src, dst netip.AddrPort }

const (
	pcapLinkTypeRaw = 101
	pcapSnapLen     = 262144
	maxSegment      = 65000 // TCP payload per synthetic segment (fits IPv4/IPv6 length fields)
)

// NewPcapWriter writes the pcap file header to w and returns the writer.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4) // microsecond timestamps
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], pcapLinkTypeRaw)
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap: writing file header: %w", err)
	}
	return &PcapWriter{w: w, seq: map[flow]uint32{}}, nil
}

// WritePacket implements PacketSink. The ck and ik parameters are
// redacted as in a trace (see Redact). After the first write error every
// later call returns that error.
func (pw *PcapWriter) WritePacket(p Packet) error {
	p.Data = Redact(p.Data)
	src, dst := p.Local, p.Remote
	if !p.Sent {
		src, dst = dst, src
	}
	if !src.Addr().IsValid() || !dst.Addr().IsValid() || src.Addr().Unmap().Is4() != dst.Addr().Unmap().Is4() {
		return fmt.Errorf("pcap: cannot record %s -> %s", src, dst)
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.err != nil {
		return pw.err
	}
	switch p.Network {
	case "udp":
		if len(p.Data) > 65507 {
			return errors.New("pcap: UDP payload larger than a datagram")
		}
		pw.err = pw.record(p, src, dst, udpSegment(src, dst, p.Data))
	case "tcp":
		for data := p.Data; len(data) > 0 && pw.err == nil; {
			n := min(len(data), maxSegment)
			f := flow{src, dst}
			seq, ok := pw.seq[f]
			if !ok {
				seq = 1
			}
			ack, ok := pw.seq[flow{dst, src}]
			if !ok {
				ack = 1
			}
			pw.seq[f] = seq + uint32(n)
			pw.err = pw.record(p, src, dst, tcpSegment(src, dst, seq, ack, data[:n]))
			data = data[n:]
		}
	default:
		return fmt.Errorf("pcap: unknown network %q", p.Network)
	}
	return pw.err
}

// record wraps a transport segment in an IP header and writes the record.
func (pw *PcapWriter) record(p Packet, src, dst netip.AddrPort, seg []byte) error {
	proto := byte(17)
	if p.Network == "tcp" {
		proto = 6
	}
	var ip []byte
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() {
		ip = make([]byte, 20, 20+len(seg))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(seg)))
		pw.id++
		binary.BigEndian.PutUint16(ip[4:], pw.id)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = proto
		s4, d4 := s.As4(), d.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
	} else {
		ip = make([]byte, 40, 40+len(seg))
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(seg)))
		ip[6] = proto
		ip[7] = 64
		s16, d16 := s.As16(), d.As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
	}
	// Transport checksum over the pseudo-header (RFC 768, RFC 9293, RFC 8200 §8.1).
	sum := onesSum(0, s.AsSlice())
	sum = onesSum(sum, d.AsSlice())
	var ph [4]byte
	binary.BigEndian.PutUint16(ph[0:], uint16(proto))
	binary.BigEndian.PutUint16(ph[2:], uint16(len(seg)))
	sum = onesSum(sum, ph[:])
	ck := ^onesSum(sum, seg)
	if proto == 17 && ck == 0 {
		ck = 0xffff
	}
	off := 6
	if proto == 6 {
		off = 16
	}
	binary.BigEndian.PutUint16(seg[off:], ck)
	pkt := append(ip, seg...)

	var rh [16]byte
	t := p.Time
	binary.LittleEndian.PutUint32(rh[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(rh[4:], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(rh[8:], uint32(len(pkt)))
	binary.LittleEndian.PutUint32(rh[12:], uint32(len(pkt)))
	if _, err := pw.w.Write(rh[:]); err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	if _, err := pw.w.Write(pkt); err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	return nil
}

func udpSegment(src, dst netip.AddrPort, data []byte) []byte {
	seg := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint16(seg[4:], uint16(8+len(data)))
	copy(seg[8:], data)
	return seg
}

func tcpSegment(src, dst netip.AddrPort, seq, ack uint32, data []byte) []byte {
	seg := make([]byte, 20+len(data))
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], seq)
	binary.BigEndian.PutUint32(seg[8:], ack)
	seg[12] = 5 << 4
	seg[13] = 0x18 // PSH, ACK
	binary.BigEndian.PutUint16(seg[14:], 65535)
	copy(seg[20:], data)
	return seg
}

// onesSum adds b to the running one's-complement sum (RFC 1071).
func onesSum(init uint16, b []byte) uint16 {
	sum := uint32(init)
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
