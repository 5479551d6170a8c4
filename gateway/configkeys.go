package gateway

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// keyProblems lists every key of the YAML document doc that has no field in Config, and every
// duration that does not parse, each with its path ("backends[0].extra"). goccy/go-yaml stops
// at the first such problem and does not name a bad duration's field; a config is checked as
// a whole, so this walk finds them all.
func keyProblems(doc []byte) (p keyReport, err error) {
	var tree any
	if err := yaml.Unmarshal(doc, &tree); err != nil {
		return p, err
	}
	walkKeys(tree, reflect.TypeFor[Config](), "", &p)
	return p, nil
}

// keyReport is what keyProblems found.
type keyReport struct {
	unknown   []error // keys with no field
	durations []error // durations that do not parse: the decoder fails on the first of them
}

func walkKeys(node any, t reflect.Type, path string, p *keyReport) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Duration]() {
		s, ok := node.(string)
		if _, err := time.ParseDuration(s); !ok || err != nil {
			p.durations = append(p.durations, fmt.Errorf("%s: must be a duration such as \"30s\", got %v", path, node))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := node.(map[string]any)
		if !ok {
			return // a type mismatch; decoding reports it
		}
		fields := yamlFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, known := fields[k]
			if !known {
				p.unknown = append(p.unknown, fmt.Errorf("%s: unknown key", joinPath(path, k)))
				continue
			}
			walkKeys(m[k], ft, joinPath(path, k), p)
		}
	case reflect.Slice:
		if s, ok := node.([]any); ok {
			for i, e := range s {
				walkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), p)
			}
		}
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
