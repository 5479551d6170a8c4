package gateway

import (
	"encoding"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// keyProblems walks the YAML document doc against Config's field types and lists every key
// that has no field and every value whose kind does not fit its field (a string for an
// integer, a map for a list, a duration that does not parse), each with its YAML path
// ("backends[0].max_concurrency"). goccy/go-yaml stops at the first such problem and names a
// Go field rather than the YAML path; a config is checked as a whole, so this walk finds them
// all. It returns the tree with every node at fault removed, so that decoding it succeeds and
// validation can still list the problems of the rest.
func keyProblems(doc []byte) (p keyReport, err error) {
	var tree any
	if err := yaml.Unmarshal(doc, &tree); err != nil {
		return p, err
	}
	p.clean = walkKeys(tree, reflect.TypeFor[Config](), "", &p)
	return p, nil
}

// keyReport is what keyProblems found.
type keyReport struct {
	unknown  []error  // keys with no field
	types    []error  // values of the wrong kind for their field, durations that do not parse
	badPaths []string // the paths of types' values
	clean    any      // the document without the nodes at fault
}

// faulty reports whether a validation message is about a value already reported as being of
// the wrong type (and left out of decoding, so that it is seen as unset).
func (p *keyReport) faulty(msg string) bool {
	path, _, _ := strings.Cut(msg, ": ")
	for _, b := range p.badPaths {
		if path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[") {
			return true
		}
	}
	return false
}

func (p *keyReport) wrongType(path string, format string, a ...any) {
	p.types = append(p.types, fmt.Errorf("%s: "+format, append([]any{path}, a...)...))
	p.badPaths = append(p.badPaths, path)
}

var (
	durationType      = reflect.TypeFor[Duration]()
	stdDurationType   = reflect.TypeFor[time.Duration]() // leaves' configs use it (DESIGN §9)
	textUnmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkKeys checks node against type t at path and returns node without the parts at fault
// (nil when node itself is). A null node fits every type: the field keeps its zero value.
func walkKeys(node any, t reflect.Type, path string, p *keyReport) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node == nil {
		return nil
	}
	if t == durationType || t == stdDurationType {
		s, ok := node.(string)
		if _, err := time.ParseDuration(s); !ok || err != nil {
			p.wrongType(path, "must be a duration such as \"30s\", got %s", describe(node))
			return nil
		}
		return node
	}
	if reflect.PointerTo(t).Implements(textUnmarshalType) {
		if _, ok := node.(string); !ok {
			p.wrongType(path, "must be a string, got %s", describe(node))
			return nil
		}
		return node
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := node.(map[string]any)
		if !ok {
			p.wrongType(path, "must be a map, got %s", describe(node))
			return nil
		}
		fields := yamlFields(t)
		out := make(map[string]any, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, known := fields[k]
			if !known {
				p.unknown = append(p.unknown, fmt.Errorf("%s: unknown key", joinPath(path, k)))
				continue
			}
			if v := walkKeys(m[k], ft, joinPath(path, k), p); v != nil {
				out[k] = v
			}
		}
		return out
	case reflect.Map:
		m, ok := node.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			p.wrongType(path, "must be a map, got %s", describe(node))
			return nil
		}
		out := make(map[string]any, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if v := walkKeys(m[k], t.Elem(), joinPath(path, k), p); v != nil {
				out[k] = v
			}
		}
		return out
	case reflect.Slice, reflect.Array:
		s, ok := node.([]any)
		if !ok {
			p.wrongType(path, "must be a list, got %s", describe(node))
			return nil
		}
		out := make([]any, 0, len(s))
		for i, e := range s {
			// a bad element becomes null, so that the others keep their index in messages
			out = append(out, walkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p))
		}
		return out
	case reflect.String:
		switch node.(type) {
		case map[string]any, []any:
			p.wrongType(path, "must be a string, got %s", describe(node))
			return nil
		}
		return node // other scalars read as their text, as the decoder reads them
	case reflect.Bool:
		if _, ok := node.(bool); !ok {
			p.wrongType(path, "must be true or false, got %s", describe(node))
			return nil
		}
		return node
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return checkInt(node, t, path, p)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return checkUint(node, t, path, p)
	case reflect.Float32, reflect.Float64:
		switch node.(type) {
		case float64, int64, uint64:
			return node
		}
		p.wrongType(path, "must be a number, got %s", describe(node))
		return nil
	}
	return node // an interface or another type the decoder judges
}

func checkInt(node any, t reflect.Type, path string, p *keyReport) any {
	var v int64
	switch n := node.(type) {
	case int64:
		v = n
	case uint64:
		if n > math.MaxInt64 {
			p.wrongType(path, "must be an integer that fits in %d bits, got %s", t.Bits(), describe(node))
			return nil
		}
		v = int64(n)
	default:
		p.wrongType(path, "must be an integer, got %s", describe(node))
		return nil
	}
	if reflect.New(t).Elem().OverflowInt(v) {
		p.wrongType(path, "must be an integer that fits in %d bits, got %s", t.Bits(), describe(node))
		return nil
	}
	return node
}

func checkUint(node any, t reflect.Type, path string, p *keyReport) any {
	var v uint64
	switch n := node.(type) {
	case uint64:
		v = n
	case int64:
		p.wrongType(path, "must be an integer >= 0, got %s", describe(node))
		return nil
	default:
		p.wrongType(path, "must be an integer, got %s", describe(node))
		return nil
	}
	if reflect.New(t).Elem().OverflowUint(v) {
		p.wrongType(path, "must be an integer that fits in %d bits, got %s", t.Bits(), describe(node))
		return nil
	}
	return node
}

// describe names a YAML value in a message: a string quoted, a map or list by its kind,
// other scalars as written.
func describe(node any) string {
	switch v := node.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	case nil:
		return "null"
	default:
		return fmt.Sprint(v)
	}
}

// yamlFields maps a struct's YAML key names to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
