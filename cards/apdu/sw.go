package apdu

import "fmt"

// SW is a status word: SW1 in the high byte, SW2 in the low byte.
type SW uint16

// Status words imsue acts on (ISO/IEC 7816-4 §5.6, ETSI TS 102 221 §10.2).
const (
	SWOK                 SW = 0x9000
	SWEndOfFile          SW = 0x6282 // fewer bytes than Ne: data returned
	SWWrongLength        SW = 0x6700
	SWLogicalChannel     SW = 0x6881
	SWIncompatibleFile   SW = 0x6981
	SWSecurityStatus     SW = 0x6982
	SWAuthBlocked        SW = 0x6983
	SWConditionsOfUse    SW = 0x6985
	SWNoEFSelected       SW = 0x6986
	SWWrongData          SW = 0x6A80
	SWFileNotFound       SW = 0x6A82
	SWRecordNotFound     SW = 0x6A83
	SWWrongP1P2          SW = 0x6A86
	SWRefDataNotFound    SW = 0x6A88
	SWWrongOffset        SW = 0x6B00
	SWINSNotSupported    SW = 0x6D00
	SWCLANotSupported    SW = 0x6E00
	SWTechnicalProblem   SW = 0x6F00
	SWAuthMACFailure     SW = 0x9862
	SWAuthContextUnknown SW = 0x9864
)

// SW1 returns the high byte.
func (sw SW) SW1() byte { return byte(sw >> 8) }

// SW2 returns the low byte.
func (sw SW) SW2() byte { return byte(sw) }

// OK reports a normal ending: 9000, or 91xx (TS 102 221: normal ending with a
// proactive command pending, which imsue does not fetch).
func (sw SW) OK() bool { return sw == SWOK || sw.SW1() == 0x91 }

// String returns the four hex digits (lowercase, as all imsue output) and
// what they mean, e.g.
// "6982 (security status not satisfied: PIN not verified?)".
func (sw SW) String() string {
	return fmt.Sprintf("%04x (%s)", uint16(sw), sw.Explain())
}

// Explain says what the status word means, in the terms of ISO/IEC 7816-4 and
// TS 102 221; the hint after a colon is what usually causes it on a UICC.
func (sw SW) Explain() string {
	if s, ok := swText[sw]; ok {
		return s
	}
	x := sw.SW2()
	switch sw.SW1() {
	case 0x61:
		return fmt.Sprintf("%d response bytes available (GET RESPONSE)", neFromLe(x))
	case 0x6C:
		return fmt.Sprintf("wrong Le: the card has %d bytes", neFromLe(x))
	case 0x63:
		if x&0xF0 == 0xC0 {
			return fmt.Sprintf("verification failed, %d tries left", x&0x0F)
		}
		return "warning, state of non-volatile memory changed"
	case 0x91:
		return fmt.Sprintf("normal ending, proactive command of %d bytes pending", x)
	case 0x92:
		return "normal ending after an internal retry"
	case 0x9F:
		return fmt.Sprintf("GSM SIM: %d response bytes available", x)
	case 0x62:
		return "warning, state of non-volatile memory unchanged"
	case 0x64:
		return "execution error, state of non-volatile memory unchanged"
	case 0x65:
		return "execution error, state of non-volatile memory changed"
	case 0x67:
		return "wrong length"
	case 0x68:
		return "function in CLA not supported"
	case 0x69:
		return "command not allowed"
	case 0x6A:
		return "wrong parameters"
	case 0x98:
		return "security management error"
	}
	return "unknown status word"
}

var swText = map[SW]string{
	0x9000: "success",
	0x6200: "warning, no information given",
	0x6281: "returned data may be corrupted",
	0x6282: "end of file or record reached before reading Le bytes",
	0x6283: "selected file invalidated",
	0x6285: "selected file in termination state",
	0x62F1: "more data available",
	0x6300: "verification failed",
	0x6581: "memory problem",
	0x6700: "wrong length",
	0x6800: "function in CLA not supported",
	0x6881: "logical channel not supported",
	0x6882: "secure messaging not supported",
	0x6981: "command incompatible with file structure",
	0x6982: "security status not satisfied: PIN not verified?",
	0x6983: "authentication method blocked: PIN blocked, use the PUK",
	0x6984: "reference data not usable: PIN invalidated",
	0x6985: "conditions of use not satisfied",
	0x6986: "command not allowed: no EF selected",
	0x6A80: "incorrect parameters in the data field",
	0x6A81: "function not supported",
	0x6A82: "file or application not found",
	0x6A83: "record not found",
	0x6A84: "not enough memory space in the file",
	0x6A86: "incorrect parameters P1-P2",
	0x6A87: "Lc inconsistent with P1-P2",
	0x6A88: "referenced data not found",
	0x6B00: "wrong parameters P1-P2: offset outside the EF",
	0x6D00: "instruction code not supported or invalid",
	0x6E00: "class not supported",
	0x6F00: "technical problem, no precise diagnosis",
	0x9850: "INCREASE cannot be performed: maximum value reached",
	0x9862: "authentication error: incorrect MAC",
	0x9863: "security session or association expired",
	0x9864: "authentication error: security context not supported",
	0x9865: "key freshness failure",
	0x9866: "authentication error: no memory space available",
	0x9867: "authentication error: no memory space available in EF.MUK",
}
