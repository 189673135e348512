// Package setting names a setting in the errors of its validation: by its
// key in the config files (the plugin's section of containerd's
// config.toml, serve's file), the toml tag of the option's field. The CLI
// maps a key to its flag; nothing passes names down to a validator.
package setting

import (
	"fmt"
	"reflect"

	"github.com/containerd/errdefs"
)

// Error is a setting with a value it cannot take.
type Error struct {
	Key   string // the toml key, as "max_layer_ratio"
	Value any
	Err   error
}

func (e *Error) Error() string {
	if s, ok := e.Value.(string); ok {
		return fmt.Sprintf("%s %q: %v", e.Key, s, e.Err)
	}
	return fmt.Sprintf("%s %v: %v", e.Key, e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid is the error of the field of v (a struct) holding value: why,
// and errdefs.ErrInvalidArgument.
func Invalid(v any, field string, value any, why string) error {
	return &Error{Key: Key(v, field), Value: value, Err: fmt.Errorf("%s: %w", why, errdefs.ErrInvalidArgument)}
}

// Key is the toml key of the field of v (a struct or a pointer to one). A
// field without one is a bug, caught by the first test that validates it.
func Key(v any, field string) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	f, ok := t.FieldByName(field)
	if !ok {
		panic(fmt.Sprintf("setting: %s has no field %s", t, field))
	}
	key := f.Tag.Get("toml")
	if key == "" || key == "-" {
		panic(fmt.Sprintf("setting: %s.%s has no toml key", t, field))
	}
	return key
}
