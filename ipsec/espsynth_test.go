package ipsec

// A minimal ESP transport-mode encoder (RFC 4303) built only from the Go
// standard library, used to give tshark packets it must decrypt with the
// esp_sa file under test. It is independent of the code under test: if the
// file's algorithm names, key encoding, SPI or address format were wrong,
// tshark would not decode these packets.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"net/netip"
)

// espPacket returns an IP packet (v4 or v6 by sa's addresses) carrying a UDP
// datagram sa.Src → sa.Dst with payload, protected by sa, sequence number seq.
func espPacket(sa *SA, seq uint32, iv []byte, payload []byte) ([]byte, error) {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], sa.Src.Port())
	binary.BigEndian.PutUint16(udp[2:], sa.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload) // checksum 0: "none" for IPv4; tshark does not verify it by default
	var block cipher.Block
	var err error
	switch sa.Enc {
	case EncAESCBC:
		block, err = aes.NewCipher(sa.EncKey)
	case EncDES3EDECBC:
		block, err = des.NewTripleDESCipher(sa.EncKey)
	case EncNull:
	default:
		return nil, fmt.Errorf("espPacket: enc %q", sa.Enc)
	}
	if err != nil {
		return nil, err
	}
	bs := 4
	if block != nil {
		bs = block.BlockSize()
		iv = iv[:bs]
	} else {
		iv = nil
	}
	// Payload || padding 1,2,3... || pad length || next header, to a multiple of bs.
	plain := append([]byte{}, udp...)
	padLen := (bs - (len(plain)+2)%bs) % bs
	for i := 1; i <= padLen; i++ {
		plain = append(plain, byte(i))
	}
	plain = append(plain, byte(padLen), 17)
	if block != nil {
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(plain, plain)
	}
	esp := binary.BigEndian.AppendUint32(nil, sa.SPI)
	esp = binary.BigEndian.AppendUint32(esp, seq)
	esp = append(esp, iv...)
	esp = append(esp, plain...)
	var h func() hash.Hash
	switch sa.Auth {
	case AuthHMACMD596:
		h = md5.New
	case AuthHMACSHA196:
		h = sha1.New
	default:
		return nil, fmt.Errorf("espPacket: auth %q", sa.Auth)
	}
	mac := hmac.New(h, sa.AuthKey)
	mac.Write(esp)
	esp = append(esp, mac.Sum(nil)[:12]...)
	return ipHeader(sa.Src.Addr(), sa.Dst.Addr(), 50, esp), nil
}

func ipHeader(src, dst netip.Addr, proto byte, payload []byte) []byte {
	if src.Is4() {
		h := make([]byte, 20, 20+len(payload))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
		h[8] = 64
		h[9] = proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
		return append(h, payload...)
	}
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = proto
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// writePCAP writes raw IP packets (LINKTYPE_RAW) in classic pcap format.
func writePCAP(w io.Writer, pkts [][]byte) error {
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 101)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for i, p := range pkts {
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(1700000000+i))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(p)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(p)))
		if _, err := w.Write(append(rec, p...)); err != nil {
			return err
		}
	}
	return nil
}
