// Package apdutest provides apdu.Transport doubles for tests of the layers
// above the APDU: a Script that checks every command against an expected
// exchange, and Func for behaviour written in the test.
package apdutest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// Exchange is one expected command and the response to give.
type Exchange struct {
	Cmd  []byte
	Resp []byte
	Err  error // returned instead of Resp when non-nil
}

// Script is a Transport that expects exactly the commands of Exchanges, in
// order, answers each with its response and records what it received. A
// command that differs, or one too many, fails the Transmit with an error
// naming both.
type Script struct {
	mu        sync.Mutex
	Exchanges []Exchange
	next      int
	Sent      [][]byte
}

// NewScript builds a Script from hex pairs: command, response, command,
// response... Spaces in the hex are ignored. It panics on malformed hex: the
// script is part of the test source.
func NewScript(pairs ...string) *Script {
	if len(pairs)%2 != 0 {
		panic("apdutest: NewScript needs command/response pairs")
	}
	s := &Script{}
	for i := 0; i < len(pairs); i += 2 {
		s.Exchanges = append(s.Exchanges, Exchange{Cmd: MustHex(pairs[i]), Resp: MustHex(pairs[i+1])})
	}
	return s
}

// Transmit implements apdu.Transport.
func (s *Script) Transmit(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Sent = append(s.Sent, bytes.Clone(cmd))
	if s.next >= len(s.Exchanges) {
		return nil, fmt.Errorf("apdutest: unexpected command %x after the %d scripted ones", cmd, len(s.Exchanges))
	}
	e := s.Exchanges[s.next]
	if !bytes.Equal(cmd, e.Cmd) {
		return nil, fmt.Errorf("apdutest: command %d is %x, want %x", s.next+1, cmd, e.Cmd)
	}
	s.next++
	if e.Err != nil {
		return nil, e.Err
	}
	return bytes.Clone(e.Resp), nil
}

// Remaining returns how many scripted exchanges were not used.
func (s *Script) Remaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.Exchanges) - s.next
}

// Func adapts a function to apdu.Transport.
type Func func(cmd []byte) ([]byte, error)

// Transmit implements apdu.Transport.
func (f Func) Transmit(cmd []byte) ([]byte, error) { return f(cmd) }

// MustHex decodes hex, ignoring spaces; it panics on bad input.
func MustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(fmt.Sprintf("apdutest: bad hex %q: %v", s, err))
	}
	return b
}
