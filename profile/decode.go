package profile

import (
	"errors"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// raw is the profile as written, before validation. present records the
// keys that were given a non-null value.
type raw struct {
	imsi, impi, domain       string
	impu                     []string
	mncLength                int
	k, op, opc               string
	sqnState, card, password string
	imei                     string
	present                  map[string]bool
}

// The fields a profile may hold, in the order errors are checked.
var fields = []string{"imsi", "mnc_length", "impi", "impu", "domain", "k", "op", "opc", "sqn_state", "card", "password", "imei"}

// decode walks the YAML tree by hand instead of unmarshalling into a struct:
// that way an unknown or repeated key is an error naming it (a typo such as
// "opC" must not silently leave the software ISIM without a key), a YAML
// number keeps its exact digits (imsi: 001010123456789 is not an octal or a
// decimal number), and no error quotes a value, which may be a secret.
func decode(data []byte) (r *raw, err error) {
	defer func() {
		// yaml.v3 reports errors by panicking internally and recovering;
		// should one escape, it is still only a bad profile.
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("not valid YAML (decoder failure: %v)", p)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errors.New("empty profile")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping of fields (imsi: ..., k: ...)", root.Line)
	}
	r = &raw{present: map[string]bool{}}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a field name must be a plain word", key.Line)
		}
		name := key.Value
		if line, dup := seen[name]; dup {
			return nil, fieldErr(name, "given twice (lines %d and %d)", line, key.Line)
		}
		seen[name] = key.Line
		if val.Kind == yaml.AliasNode {
			val = val.Alias
			if val == nil {
				return nil, fieldErr(name, "line %d: alias to nothing", key.Line)
			}
		}
		if err := r.set(name, val); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// scalar returns the exact text of a scalar value.
func scalar(name string, n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", fieldErr(name, "line %d: want a single value", n.Line)
	}
	return n.Value, nil
}

func (r *raw) set(name string, n *yaml.Node) error {
	known := false
	for _, f := range fields {
		known = known || f == name
	}
	if !known {
		return fieldErr(name, "unknown field (line %d); known fields: imsi, mnc_length, impi, impu, domain, k, op, opc, sqn_state, card, password", n.Line)
	}
	if isNull(n) {
		return nil // "k:" with nothing after it is the same as no k
	}
	r.present[name] = true
	if name == "impu" {
		return r.setIMPU(n)
	}
	v, err := scalar(name, n)
	if err != nil {
		return err
	}
	switch name {
	case "imsi":
		r.imsi = v
	case "mnc_length":
		m, err := strconv.Atoi(v)
		if err != nil || (m != 2 && m != 3) {
			return fieldErr(name, "want 2 or 3, got %q", v)
		}
		r.mncLength = m
	case "impi":
		r.impi = v
	case "domain":
		r.domain = v
	case "k":
		r.k = v
	case "op":
		r.op = v
	case "opc":
		r.opc = v
	case "sqn_state":
		r.sqnState = v
	case "card":
		r.card = v
	case "password":
		r.password = v
	case "imei":
		r.imei = v
	}
	return nil
}

// setIMPU takes a list of URIs, or one URI alone.
func (r *raw) setIMPU(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		r.impu = []string{n.Value}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				return fieldErr("impu", "entry %d (line %d): want a URI", i+1, item.Line)
			}
			r.impu = append(r.impu, item.Value)
		}
		if len(r.impu) == 0 {
			delete(r.present, "impu")
		}
	default:
		return fieldErr("impu", "line %d: want a URI or a list of URIs", n.Line)
	}
	return nil
}
