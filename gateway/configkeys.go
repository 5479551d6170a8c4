package gateway

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
)

// unknownKeys lists every key of the YAML document doc that has no field in Config, each with
// its path ("backends[0].extra"). goccy/go-yaml's strict mode stops at the first one; a
// config is checked as a whole, so this walk finds them all.
func unknownKeys(doc []byte) ([]error, error) {
	var tree any
	if err := yaml.Unmarshal(doc, &tree); err != nil {
		return nil, err
	}
	var errs []error
	walkKeys(tree, reflect.TypeFor[Config](), "", &errs)
	return errs, nil
}

func walkKeys(node any, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
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
				*errs = append(*errs, fmt.Errorf("%s: unknown key", joinPath(path, k)))
				continue
			}
			walkKeys(m[k], ft, joinPath(path, k), errs)
		}
	case reflect.Slice:
		if s, ok := node.([]any); ok {
			for i, e := range s {
				walkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
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
