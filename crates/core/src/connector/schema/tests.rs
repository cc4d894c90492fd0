//! Fixtures are pieces of what FastAPI 0.165 / pydantic 2.14 print for `app.openapi()`.

use super::*;
use crate::connector::notes::Notes;
use serde_json::json;

/// `components.schemas` of a FastAPI app (models with Optional, Literal, Enum, Decimal, dates,
/// constraints, dict, tuple, bytes, UploadFile, unions, recursion), as FastAPI printed it.
fn fastapi() -> Value {
    serde_json::from_str(FASTAPI).unwrap()
}

const FASTAPI: &str = r##"
{
 "components": {
  "schemas": {
   "A-Input": {
    "properties": {
     "b": {
      "anyOf": [
       {
        "$ref": "#/components/schemas/B-Input"
       },
       {
        "type": "null"
       }
      ]
     },
     "x": {
      "title": "X",
      "type": "integer"
     }
    },
    "required": [
     "x"
    ],
    "title": "A",
    "type": "object"
   },
   "B-Input": {
    "properties": {
     "a": {
      "items": {
       "$ref": "#/components/schemas/A-Input"
      },
      "title": "A",
      "type": "array"
     }
    },
    "required": [
     "a"
    ],
    "title": "B",
    "type": "object"
   },
   "Body_upload_upload_post": {
    "properties": {
     "count": {
      "anyOf": [
       {
        "type": "integer"
       },
       {
        "type": "null"
       }
      ],
      "title": "Count"
     },
     "file": {
      "contentMediaType": "application/octet-stream",
      "title": "File",
      "type": "string"
     },
     "files": {
      "default": [],
      "items": {
       "contentMediaType": "application/octet-stream",
       "type": "string"
      },
      "title": "Files",
      "type": "array"
     },
     "note": {
      "default": "",
      "title": "Note",
      "type": "string"
     }
    },
    "required": [
     "file"
    ],
    "title": "Body_upload_upload_post",
    "type": "object"
   },
   "Cat": {
    "properties": {
     "kind": {
      "const": "cat",
      "title": "Kind",
      "type": "string"
     },
     "meows": {
      "title": "Meows",
      "type": "boolean"
     },
     "name": {
      "title": "Name",
      "type": "string"
     }
    },
    "required": [
     "kind",
     "meows",
     "name"
    ],
    "title": "Cat",
    "type": "object"
   },
   "Color": {
    "enum": [
     "red",
     "green"
    ],
    "title": "Color",
    "type": "string"
   },
   "Dog": {
    "properties": {
     "barks": {
      "default": 3,
      "title": "Barks",
      "type": "integer"
     },
     "kind": {
      "const": "dog",
      "title": "Kind",
      "type": "string"
     },
     "name": {
      "title": "Name",
      "type": "string"
     }
    },
    "required": [
     "kind",
     "name"
    ],
    "title": "Dog",
    "type": "object"
   },
   "HTTPValidationError": {
    "properties": {
     "detail": {
      "items": {
       "$ref": "#/components/schemas/ValidationError"
      },
      "title": "Detail",
      "type": "array"
     }
    },
    "title": "HTTPValidationError",
    "type": "object"
   },
   "Item-Input": {
    "description": "An item.",
    "properties": {
     "anyv": {
      "title": "Anyv"
     },
     "attrs": {
      "additionalProperties": {
       "type": "integer"
      },
      "default": {},
      "title": "Attrs",
      "type": "object"
     },
     "blob": {
      "anyOf": [
       {
        "contentMediaType": "application/octet-stream",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "Blob"
     },
     "color": {
      "anyOf": [
       {
        "$ref": "#/components/schemas/Color"
       },
       {
        "type": "null"
       }
      ]
     },
     "day": {
      "format": "date",
      "title": "Day",
      "type": "string"
     },
     "deprecated_field": {
      "anyOf": [
       {
        "type": "integer"
       },
       {
        "type": "null"
       }
      ],
      "deprecated": true,
      "title": "Deprecated Field"
     },
     "dur": {
      "anyOf": [
       {
        "format": "duration",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "Dur"
     },
     "email": {
      "anyOf": [
       {
        "format": "email",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "Email"
     },
     "fixed": {
      "const": "only",
      "default": "only",
      "title": "Fixed",
      "type": "string"
     },
     "ident": {
      "anyOf": [
       {
        "format": "uuid",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "Ident"
     },
     "ident4": {
      "anyOf": [
       {
        "format": "uuid4",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "Ident4"
     },
     "level": {
      "$ref": "#/components/schemas/Level",
      "default": 1
     },
     "mixed": {
      "anyOf": [
       {
        "type": "integer"
       },
       {
        "type": "string"
       }
      ],
      "default": 0,
      "title": "Mixed"
     },
     "mode": {
      "default": "a",
      "enum": [
       "a",
       "b"
      ],
      "title": "Mode",
      "type": "string"
     },
     "name": {
      "description": "The name",
      "examples": [
       "widget"
      ],
      "title": "Name",
      "type": "string"
     },
     "nested": {
      "default": [],
      "items": {
       "items": {
        "type": "number"
       },
       "type": "array"
      },
      "title": "Nested",
      "type": "array"
     },
     "node": {
      "anyOf": [
       {
        "$ref": "#/components/schemas/Node-Input"
       },
       {
        "type": "null"
       }
      ]
     },
     "num": {
      "anyOf": [
       {
        "type": "integer"
       },
       {
        "type": "number"
       }
      ],
      "default": 0,
      "title": "Num"
     },
     "pair": {
      "anyOf": [
       {
        "maxItems": 2,
        "minItems": 2,
        "prefixItems": [
         {
          "type": "integer"
         },
         {
          "type": "string"
         }
        ],
        "type": "array"
       },
       {
        "type": "null"
       }
      ],
      "title": "Pair"
     },
     "pet": {
      "anyOf": [
       {
        "$ref": "#/components/schemas/Cat"
       },
       {
        "$ref": "#/components/schemas/Dog"
       },
       {
        "type": "null"
       }
      ],
      "title": "Pet"
     },
     "pet2": {
      "anyOf": [
       {
        "discriminator": {
         "mapping": {
          "cat": "#/components/schemas/Cat",
          "dog": "#/components/schemas/Dog"
         },
         "propertyName": "kind"
        },
        "oneOf": [
         {
          "$ref": "#/components/schemas/Cat"
         },
         {
          "$ref": "#/components/schemas/Dog"
         }
        ]
       },
       {
        "type": "null"
       }
      ],
      "title": "Pet2"
     },
     "price": {
      "anyOf": [
       {
        "type": "number"
       },
       {
        "type": "string"
       }
      ],
      "title": "Price"
     },
     "qty": {
      "default": 1,
      "exclusiveMaximum": 100.0,
      "exclusiveMinimum": 0.0,
      "title": "Qty",
      "type": "integer"
     },
     "ratio": {
      "default": 0,
      "maximum": 1.0,
      "minimum": 0.0,
      "multipleOf": 0.5,
      "title": "Ratio",
      "type": "number"
     },
     "ro": {
      "default": 0,
      "readOnly": true,
      "title": "Ro",
      "type": "integer"
     },
     "secret": {
      "anyOf": [
       {
        "format": "password",
        "type": "string",
        "writeOnly": true
       },
       {
        "type": "null"
       }
      ],
      "title": "Secret"
     },
     "set_of": {
      "default": [],
      "items": {
       "type": "integer"
      },
      "title": "Set Of",
      "type": "array",
      "uniqueItems": true
     },
     "strmap": {
      "additionalProperties": {
       "$ref": "#/components/schemas/Node-Input"
      },
      "default": {},
      "title": "Strmap",
      "type": "object"
     },
     "t": {
      "anyOf": [
       {
        "format": "time",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "T"
     },
     "tags": {
      "default": [],
      "items": {
       "type": "string"
      },
      "title": "Tags",
      "type": "array"
     },
     "url": {
      "anyOf": [
       {
        "format": "uri",
        "maxLength": 2083,
        "minLength": 1,
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "Url"
     },
     "when": {
      "anyOf": [
       {
        "format": "date-time",
        "type": "string"
       },
       {
        "type": "null"
       }
      ],
      "title": "When"
     }
    },
    "required": [
     "name",
     "price",
     "day"
    ],
    "title": "Item",
    "type": "object"
   },
   "Level": {
    "enum": [
     1,
     2
    ],
    "title": "Level",
    "type": "integer"
   },
   "Node-Input": {
    "properties": {
     "children": {
      "default": [],
      "items": {
       "$ref": "#/components/schemas/Node-Input"
      },
      "title": "Children",
      "type": "array"
     },
     "name": {
      "title": "Name",
      "type": "string"
     }
    },
    "required": [
     "name"
    ],
    "title": "Node",
    "type": "object"
   },
   "ValidationError": {
    "properties": {
     "ctx": {
      "title": "Context",
      "type": "object"
     },
     "input": {
      "title": "Input"
     },
     "loc": {
      "items": {
       "anyOf": [
        {
         "type": "string"
        },
        {
         "type": "integer"
        }
       ]
      },
      "title": "Location",
      "type": "array"
     },
     "msg": {
      "title": "Message",
      "type": "string"
     },
     "type": {
      "title": "Error Type",
      "type": "string"
     }
    },
    "required": [
     "loc",
     "msg",
     "type"
    ],
    "title": "ValidationError",
    "type": "object"
   }
  }
 }
}
"##;

fn body_in(doc: &Value, schema: Value) -> (Value, Vec<String>) {
    let mut notes = Notes::new(0);
    let out = body_schema(&schema, doc, "test", &mut notes);
    let warnings = notes.lines();
    assert_swagger(&out);
    (out, warnings)
}

fn body(schema: Value) -> (Value, Vec<String>) {
    body_in(&fastapi(), schema)
}

fn param(schema: Value, location: &str) -> (Value, Vec<String>) {
    let mut notes = Notes::new(0);
    let out = parameter_fields(&schema, &fastapi(), location, "p", &mut notes);
    let warnings = notes.lines();
    (Value::Object(out), warnings)
}

fn definition(name: &str) -> (Value, Vec<String>) {
    let mut notes = Notes::new(0);
    let defs = definitions(&fastapi(), &mut notes);
    let warnings = notes.lines();
    (defs[name].clone(), warnings)
}

/// Keys `#/definitions/schema` of the connector schema allows (besides `x-*`).
const SCHEMA_KEYS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "additionalProperties",
    "type",
    "items",
    "allOf",
    "properties",
    "discriminator",
    "readOnly",
    "xml",
    "externalDocs",
    "example",
];

/// What Power Platform's schema checks of a schema object, recursively; plus no `$ref` siblings.
fn assert_swagger(schema: &Value) {
    let map = schema.as_object().unwrap();
    for (k, v) in map {
        let x_ms = k.starts_with("x-ms-") && keeps_x_ms(k, v);
        let allowed = SCHEMA_KEYS.contains(&k.as_str())
            || x_ms
            || (k.starts_with("x-") && !k.starts_with("x-ms-"));
        assert!(allowed, "key {k} in {schema}");
        match k.as_str() {
            "$ref" => assert_eq!(map.len(), 1, "$ref with siblings: {schema}"),
            "type" => assert!(TYPES.contains(&v.as_str().unwrap()), "{schema}"),
            "format" => assert!(FORMATS.contains(&v.as_str().unwrap()), "{schema}"),
            "enum" | "required" => assert!(!v.as_array().unwrap().is_empty(), "{schema}"),
            "exclusiveMinimum" | "exclusiveMaximum" | "readOnly" => assert!(v.is_boolean()),
            "properties" => v.as_object().unwrap().values().for_each(assert_swagger),
            "allOf" => {
                assert!(!v.as_array().unwrap().is_empty(), "{schema}");
                v.as_array().unwrap().iter().for_each(assert_swagger);
            }
            "items" => assert_swagger(v),
            "additionalProperties" if v.is_object() => assert_swagger(v),
            _ => {}
        }
    }
}

#[test]
fn definition_name_replaces_everything_but_word_chars() {
    assert_eq!(definition_name("Item-Input"), "Item_Input");
    assert_eq!(definition_name("a.b c/d_e9"), "a_b_c_d_e9");
    assert_eq!(
        definition_name("Body_upload_upload_post"),
        "Body_upload_upload_post"
    );
}

#[test]
fn definitions_cover_all_components_and_refs_point_at_them() {
    let mut notes = Notes::new(0);
    let defs = definitions(&fastapi(), &mut notes);
    let warnings = notes.lines();
    let names: Vec<&str> = defs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "A_Input",
            "B_Input",
            "Body_upload_upload_post",
            "Cat",
            "Color",
            "Dog",
            "HTTPValidationError",
            "Item_Input",
            "Level",
            "Node_Input",
            "ValidationError"
        ]
    );
    defs.values().for_each(assert_swagger);
    // Every ref names a definition.
    let text = Value::Object(defs.clone()).to_string();
    for piece in text.split("\"$ref\":\"#/definitions/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(defs.contains_key(name), "{name}");
    }
    assert!(!text.contains("components"));
    // Deterministic: same input, same bytes.
    let mut again = Notes::new(0);
    assert_eq!(
        Value::Object(definitions(&fastapi(), &mut again)).to_string(),
        text
    );
    assert_eq!(warnings, again.lines());
}

#[test]
fn definitions_of_a_document_without_components_are_empty() {
    let mut notes = Notes::new(0);
    assert!(definitions(&json!({"openapi": "3.1.0", "paths": {}}), &mut notes).is_empty());
    let warnings = notes.lines();
    assert!(warnings.is_empty());
}

#[test]
fn colliding_definition_names_keep_the_first_with_a_warning() {
    let doc =
        json!({"components": {"schemas": {"A-B": {"type": "string"}, "A.B": {"type": "integer"}}}});
    let mut notes = Notes::new(0);
    let defs = definitions(&doc, &mut notes);
    let warnings = notes.lines();
    assert_eq!(Value::Object(defs), json!({"A_B": {"type": "string"}}));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("A.B"), "{warnings:?}");
}

#[test]
fn component_ref_becomes_definitions_ref() {
    let (out, warnings) = body(json!({"$ref": "#/components/schemas/Item-Input"}));
    assert_eq!(out, json!({"$ref": "#/definitions/Item_Input"}));
    assert!(warnings.is_empty());
}

#[test]
fn ref_with_siblings_is_wrapped_in_all_of() {
    // pydantic: `level: Level = Level.low`
    let (out, _) =
        body(json!({"$ref": "#/components/schemas/Level", "default": 1, "description": "d"}));
    assert_eq!(
        out,
        json!({"allOf": [{"$ref": "#/definitions/Level"}], "default": 1, "description": "d"})
    );
}

#[test]
fn optional_primitive_becomes_x_nullable() {
    let (out, warnings) = body(
        json!({"anyOf": [{"format": "date-time", "type": "string"}, {"type": "null"}], "title": "When"}),
    );
    assert_eq!(
        out,
        json!({"format": "date-time", "title": "When", "type": "string", "x-nullable": true})
    );
    assert!(warnings.is_empty());
    let (out, _) = body(json!({"oneOf": [{"type": "null"}, {"type": "integer"}], "default": null}));
    assert_eq!(out, json!({"type": "integer", "x-nullable": true}));
    let (out, _) = body(json!({"type": ["integer", "null"], "minimum": 1}));
    assert_eq!(
        out,
        json!({"minimum": 1, "type": "integer", "x-nullable": true})
    );
    let (out, _) = body(json!({"type": "string", "nullable": true}));
    assert_eq!(out, json!({"type": "string", "x-nullable": true}));
}

#[test]
fn optional_ref_becomes_nullable_all_of() {
    let (out, warnings) =
        body(json!({"anyOf": [{"$ref": "#/components/schemas/Node-Input"}, {"type": "null"}]}));
    assert_eq!(
        out,
        json!({"allOf": [{"$ref": "#/definitions/Node_Input"}], "x-nullable": true})
    );
    assert!(warnings.is_empty());
}

#[test]
fn null_type_alone_is_only_x_nullable() {
    assert_eq!(
        body(json!({"type": "null", "title": "N"})).0,
        json!({"title": "N", "x-nullable": true})
    );
    assert_eq!(
        body(json!({"enum": ["a", null]})).0,
        json!({"enum": ["a"], "type": "string", "x-nullable": true})
    );
}

#[test]
fn union_of_models_merges_properties_and_intersects_required() {
    // pydantic: `pet: Cat | Dog | None`
    let (out, warnings) = body(json!({"anyOf": [
        {"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}, {"type": "null"}
    ], "title": "Pet"}));
    assert_eq!(
        out,
        json!({
            "properties": {
                "barks": {"default": 3, "title": "Barks", "type": "integer"},
                "kind": {"enum": ["cat", "dog"], "title": "Kind", "type": "string"},
                "meows": {"title": "Meows", "type": "boolean"},
                "name": {"title": "Name", "type": "string"}
            },
            "required": ["kind", "name"],
            "title": "Pet",
            "type": "object",
            "x-nullable": true
        })
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("test: union Cat | Dog merged into one object"),
        "{warnings:?}"
    );
}

#[test]
fn discriminated_union_drops_the_openapi3_discriminator() {
    // pydantic: `pet2: Annotated[Cat | Dog, Field(discriminator="kind")] | None`
    let (out, _) =
        body(fastapi()["components"]["schemas"]["Item-Input"]["properties"]["pet2"].clone());
    assert_eq!(out["required"], json!(["kind", "name"]));
    assert_eq!(out["properties"]["kind"]["enum"], json!(["cat", "dog"]));
    assert_eq!(out["x-nullable"], json!(true));
    assert!(out.get("discriminator").is_none());
}

#[test]
fn swagger_discriminator_is_kept_only_when_required() {
    let schema = json!({"type": "object", "discriminator": "kind", "properties": {"kind": {"type": "string"}}});
    assert!(body(schema.clone()).0.get("discriminator").is_none());
    let mut required = schema;
    required["required"] = json!(["kind"]);
    assert_eq!(body(required).0["discriminator"], json!("kind"));
}

#[test]
fn numeric_unions_become_number_and_mixed_primitives_string() {
    let (out, warnings) = body(
        json!({"anyOf": [{"type": "integer"}, {"type": "number"}], "default": 0, "title": "Num"}),
    );
    assert_eq!(out, json!({"default": 0, "title": "Num", "type": "number"}));
    assert!(warnings.is_empty());
    // pydantic's Decimal (validation side): number | string with a pattern → plain string.
    let (out, warnings) = body(
        json!({"anyOf": [{"type": "number"}, {"type": "string", "pattern": "^\\d+$"}], "title": "Price"}),
    );
    assert_eq!(out, json!({"title": "Price", "type": "string"}));
    assert_eq!(warnings, ["test: union number | string emitted as string"]);
    // pydantic: `mixed: int | str = 0`; the default no longer fits the type.
    let (out, _) = body(
        json!({"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 0, "title": "Mixed"}),
    );
    assert_eq!(out, json!({"title": "Mixed", "type": "string"}));
    let (out, warnings) = body(json!({"type": ["string", "integer", "null"]}));
    assert_eq!(out, json!({"type": "string", "x-nullable": true}));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn union_of_a_model_and_a_primitive_is_unconstrained() {
    let (out, warnings) =
        body(json!({"anyOf": [{"$ref": "#/components/schemas/Cat"}, {"type": "string"}]}));
    assert_eq!(out, json!({}));
    assert_eq!(
        warnings,
        ["test: union Cat | string has no Swagger 2.0 form; left unconstrained"]
    );
}

#[test]
fn union_of_arrays_is_an_array_of_the_union() {
    let (out, _) = body(json!({"anyOf": [
        {"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "number"}}
    ]}));
    assert_eq!(out, json!({"items": {"type": "number"}, "type": "array"}));
}

#[test]
fn all_of_is_kept() {
    let (out, _) =
        body(json!({"allOf": [{"$ref": "#/components/schemas/Cat"}], "description": "a cat"}));
    assert_eq!(
        out,
        json!({"allOf": [{"$ref": "#/definitions/Cat"}], "description": "a cat"})
    );
    assert_eq!(body(json!({"allOf": []})).0, json!({}));
}

#[test]
fn const_becomes_a_one_value_enum() {
    let (out, _) = body(json!({"const": "cat", "title": "Kind", "type": "string"}));
    assert_eq!(
        out,
        json!({"enum": ["cat"], "title": "Kind", "type": "string"})
    );
    assert_eq!(
        body(json!({"const": 3})).0,
        json!({"enum": [3], "type": "integer"})
    );
    assert_eq!(
        body(json!({"const": true})).0,
        json!({"enum": [true], "type": "boolean"})
    );
    assert_eq!(
        body(json!({"enum": ["a", "a", "b"]})).0,
        json!({"enum": ["a", "b"], "type": "string"})
    );
    assert_eq!(body(json!({"enum": [1, "a"]})).0, json!({"enum": [1, "a"]}));
    assert_eq!(
        body(json!({"enum": ["a"], "default": "b"})).0,
        json!({"enum": ["a"], "type": "string"})
    );
    assert_eq!(
        body(json!({"type": "number", "default": 2})).0,
        json!({"default": 2, "type": "number"})
    );
}

#[test]
fn examples_become_example() {
    let (out, _) = body(
        json!({"description": "The name", "examples": ["widget", "gadget"], "title": "Name", "type": "string"}),
    );
    assert_eq!(
        out,
        json!({"description": "The name", "example": "widget", "title": "Name", "type": "string"})
    );
    assert_eq!(
        body(json!({"type": "string", "example": "x", "examples": ["y"]})).0,
        json!({"example": "x", "type": "string"})
    );
    assert_eq!(
        body(json!({"type": "string", "examples": []})).0,
        json!({"type": "string"})
    );
}

#[test]
fn numeric_exclusive_bounds_become_boolean() {
    // pydantic: `Annotated[int, Field(gt=0, lt=100)]`
    let (out, _) = body(
        json!({"default": 1, "exclusiveMaximum": 100.0, "exclusiveMinimum": 0.0, "title": "Qty", "type": "integer"}),
    );
    assert_eq!(
        out,
        json!({"default": 1, "exclusiveMaximum": true, "exclusiveMinimum": true, "maximum": 100.0, "minimum": 0.0, "title": "Qty", "type": "integer"})
    );
    // The stricter of two lower bounds wins.
    assert_eq!(
        body(json!({"type": "number", "minimum": 5, "exclusiveMinimum": 1})).0,
        json!({"minimum": 5, "type": "number"})
    );
    assert_eq!(
        body(json!({"type": "number", "minimum": 1, "exclusiveMinimum": 5})).0,
        json!({"exclusiveMinimum": true, "minimum": 5, "type": "number"})
    );
    // 3.0's boolean form survives only with its bound.
    assert_eq!(
        body(json!({"type": "number", "exclusiveMaximum": true})).0,
        json!({"type": "number"})
    );
    assert_eq!(
        body(json!({"type": "number", "maximum": 2, "exclusiveMaximum": true})).0,
        json!({"exclusiveMaximum": true, "maximum": 2, "type": "number"})
    );
    let (out, _) =
        body(json!({"type": "number", "minimum": 0.0, "maximum": 1.0, "multipleOf": 0.5}));
    assert_eq!(
        out,
        json!({"maximum": 1.0, "minimum": 0.0, "multipleOf": 0.5, "type": "number"})
    );
}

#[test]
fn content_media_type_becomes_binary() {
    // FastAPI: UploadFile and bytes.
    let (out, _) = body(
        json!({"contentMediaType": "application/octet-stream", "title": "File", "type": "string"}),
    );
    assert_eq!(
        out,
        json!({"format": "binary", "title": "File", "type": "string"})
    );
    let (out, _) = body(
        json!({"anyOf": [{"contentMediaType": "application/octet-stream", "type": "string"}, {"type": "null"}]}),
    );
    assert_eq!(
        out,
        json!({"format": "binary", "type": "string", "x-nullable": true})
    );
    assert_eq!(
        body(json!({"type": "string", "format": "binary"})).0,
        json!({"format": "binary", "type": "string"})
    );
    let (out, _) = body(json!({"type": "string", "contentEncoding": "base64"}));
    assert_eq!(out, json!({"format": "byte", "type": "string"}));
    let (out, _) = body(json!({"contentMediaType": "image/png", "contentEncoding": "base64"}));
    assert_eq!(out, json!({"format": "byte", "type": "string"}));
    assert_eq!(
        body(json!({"contentMediaType": "image/png"})).0,
        json!({"format": "binary", "type": "string"})
    );
    // pydantic: `Json[dict[str, int]]`, a JSON text inside a string.
    let (out, _) = body(
        json!({"contentMediaType": "application/json", "contentSchema": {"type": "object"}, "type": "string"}),
    );
    assert_eq!(out, json!({"type": "string"}));
}

#[test]
fn formats_outside_power_platforms_list_are_dropped() {
    for kept in [
        "int32",
        "int64",
        "float",
        "double",
        "byte",
        "binary",
        "date",
        "date-time",
        "password",
        "email",
        "uri",
        "uuid",
    ] {
        assert_eq!(
            body(json!({"type": "string", "format": kept})).0["format"],
            json!(kept)
        );
    }
    for dropped in [
        "time",
        "duration",
        "ipv4",
        "uri-reference",
        "json-string",
        "path",
        "hostname",
    ] {
        assert_eq!(
            body(json!({"type": "string", "format": dropped})).0,
            json!({"type": "string"}),
            "{dropped}"
        );
    }
    // pydantic's UUID4
    assert_eq!(
        body(json!({"type": "string", "format": "uuid4"})).0["format"],
        json!("uuid")
    );
}

#[test]
fn keywords_swagger_2_does_not_know_are_dropped() {
    let (out, warnings) = body(json!({
        "type": "object",
        "$defs": {"X": {}}, "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x",
        "$comment": "c", "writeOnly": true, "deprecated": true, "not": {"type": "null"},
        "if": {}, "then": {}, "else": {}, "contains": {}, "dependentRequired": {},
        "dependentSchemas": {}, "unevaluatedProperties": false, "propertyNames": {},
        "patternProperties": {"^a": {}}, "contentSchema": {}, "nullable": false,
        "discriminator": {"propertyName": "kind"}, "required": [], "minContains": 1,
        "x-ms-foo": 1, "x-ms-summary": "Thing", "x-ms-visibility": "advanced", "x-custom": {"a": 1},
        "readOnly": true, "title": "T", "maxProperties": 3
    }));
    assert_eq!(
        out,
        json!({"maxProperties": 3, "readOnly": true, "title": "T", "type": "object",
               "x-custom": {"a": 1}, "x-ms-summary": "Thing", "x-ms-visibility": "advanced"})
    );
    assert!(warnings.is_empty());
}

#[test]
fn missing_type_is_inferred_from_properties_and_items() {
    assert_eq!(
        body(json!({"properties": {"a": {"type": "string"}}, "required": ["a", "a"]})).0,
        json!({"properties": {"a": {"type": "string"}}, "required": ["a"], "type": "object"})
    );
    assert_eq!(
        body(json!({"items": {"type": "string"}})).0,
        json!({"items": {"type": "string"}, "type": "array"})
    );
    assert_eq!(
        body(json!({"type": "array"})).0,
        json!({"items": {}, "type": "array"})
    );
    // pydantic: `Any`, and `dict` without value type
    assert_eq!(body(json!({"title": "Anyv"})).0, json!({"title": "Anyv"}));
    assert_eq!(
        body(json!({"title": "Context", "type": "object"})).0,
        json!({"title": "Context", "type": "object"})
    );
}

#[test]
fn additional_properties_are_converted() {
    // pydantic: `dict[str, Node]`
    let (out, _) = body(
        json!({"additionalProperties": {"$ref": "#/components/schemas/Node-Input"}, "default": {}, "type": "object"}),
    );
    assert_eq!(
        out,
        json!({"additionalProperties": {"$ref": "#/definitions/Node_Input"}, "default": {}, "type": "object"})
    );
    assert_eq!(
        body(json!({"additionalProperties": false, "type": "object"})).0,
        json!({"additionalProperties": false, "type": "object"})
    );
    let (out, _) =
        body(json!({"additionalProperties": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}));
    assert_eq!(
        out,
        json!({"additionalProperties": {"type": "integer", "x-nullable": true}, "type": "object"})
    );
}

#[test]
fn tuples_become_arrays_of_one_item_schema() {
    // pydantic: `tuple[int, str]`
    let (out, warnings) = body(
        json!({"maxItems": 2, "minItems": 2, "prefixItems": [{"type": "integer"}, {"type": "string"}], "type": "array"}),
    );
    assert_eq!(
        out,
        json!({"items": {"type": "string"}, "maxItems": 2, "minItems": 2, "type": "array"})
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let (out, _) =
        body(json!({"prefixItems": [{"type": "integer"}], "items": false, "type": "array"}));
    assert_eq!(out, json!({"items": {"type": "integer"}, "type": "array"}));
    let (out, _) = body(json!({"items": [{"type": "integer"}], "type": "array"}));
    assert_eq!(out, json!({"items": {}, "type": "array"}));
}

#[test]
fn default_null_and_empty_required_are_dropped() {
    assert_eq!(
        body(json!({"type": "string", "default": null})).0,
        json!({"type": "string"})
    );
    assert_eq!(
        body(json!({"type": "object", "required": []})).0,
        json!({"type": "object"})
    );
}

#[test]
fn self_recursive_definition_stays_a_ref() {
    let (out, warnings) = definition("Node_Input");
    assert_eq!(
        out,
        json!({
            "properties": {
                "children": {"default": [], "items": {"$ref": "#/definitions/Node_Input"}, "title": "Children", "type": "array"},
                "name": {"title": "Name", "type": "string"}
            },
            "required": ["name"],
            "title": "Node",
            "type": "object"
        })
    );
    assert!(!warnings.iter().any(|w| w.contains("Node")), "{warnings:?}");
}

#[test]
fn mutually_recursive_definitions_stay_refs() {
    let (a, _) = definition("A_Input");
    assert_eq!(
        a["properties"]["b"],
        json!({"allOf": [{"$ref": "#/definitions/B_Input"}], "x-nullable": true})
    );
    let (b, _) = definition("B_Input");
    assert_eq!(
        b["properties"]["a"]["items"],
        json!({"$ref": "#/definitions/A_Input"})
    );
}

#[test]
fn recursive_unions_terminate() {
    // X and Y each hold an `X | Y`: merging the union meets the same union again.
    let doc = json!({"components": {"schemas": {
        "X": {"type": "object", "properties": {"x": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/components/schemas/X"}, {"$ref": "#/components/schemas/Y"}]}}},
        "Y": {"type": "object", "properties": {"y": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/components/schemas/Y"}, {"$ref": "#/components/schemas/X"}, {"type": "null"}]}}},
        "Loop": {"anyOf": [{"$ref": "#/components/schemas/Loop"}, {"type": "string"}]}
    }}});
    let mut notes = Notes::new(0);
    let defs = definitions(&doc, &mut notes);
    let warnings = notes.lines();
    defs.values().for_each(assert_swagger);
    // One level is merged; the union inside it is the one being merged, so it stays open.
    assert_eq!(
        defs["X"]["properties"]["next"]["properties"]["next"],
        json!({"x-nullable": true})
    );
    assert_eq!(defs["Loop"], json!({}));
    assert!(
        warnings.iter().any(|w| w.contains("recursive union")),
        "{warnings:?}"
    );
    let (out, _) = body_in(
        &doc,
        json!({"anyOf": [{"$ref": "#/components/schemas/X"}, {"$ref": "#/components/schemas/Y"}]}),
    );
    assert_eq!(out["type"], json!("object"));
}

#[test]
fn recursive_local_refs_outside_components_terminate() {
    let doc = json!({"components": {"schemas": {"T": {"type": "object", "properties": {
        "me": {"$ref": "#/components/schemas/T/properties/me"},
        "kid": {"type": "array", "items": {"$ref": "#/components/schemas/T/properties/kid"}}
    }}}}});
    let (out, warnings) = body_in(
        &doc,
        json!({"$ref": "#/components/schemas/T/properties/kid"}),
    );
    assert_eq!(out, json!({"items": {}, "type": "array"}));
    assert!(
        warnings.iter().any(|w| w.contains("recursive $ref")),
        "{warnings:?}"
    );
    let (out, warnings) = body_in(&doc, json!({"$ref": "#/nowhere"}));
    assert_eq!(out, json!({}));
    assert_eq!(
        warnings,
        ["test: cannot resolve $ref `#/nowhere`; left unconstrained"]
    );
}

#[test]
fn deep_nesting_stops_at_the_depth_limit() {
    let mut schema = json!({"type": "string"});
    for _ in 0..500 {
        schema = json!({"type": "array", "items": schema});
    }
    let (_, warnings) = body(schema);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("nested too deeply"));
}

#[test]
fn every_fastapi_item_field_converts_to_what_power_platform_accepts() {
    let (item, warnings) = definition("Item_Input");
    let p = &item["properties"];
    assert_eq!(
        p["color"],
        json!({"allOf": [{"$ref": "#/definitions/Color"}], "x-nullable": true})
    );
    assert_eq!(
        p["fixed"],
        json!({"default": "only", "enum": ["only"], "title": "Fixed", "type": "string"})
    );
    assert_eq!(
        p["t"],
        json!({"title": "T", "type": "string", "x-nullable": true})
    );
    assert_eq!(
        p["secret"],
        json!({"format": "password", "title": "Secret", "type": "string", "x-nullable": true})
    );
    assert_eq!(
        p["deprecated_field"],
        json!({"title": "Deprecated Field", "type": "integer", "x-nullable": true})
    );
    assert_eq!(p["price"], json!({"title": "Price", "type": "string"}));
    assert_eq!(
        p["nested"]["items"],
        json!({"items": {"type": "number"}, "type": "array"})
    );
    assert_eq!(p["set_of"]["uniqueItems"], json!(true));
    assert_eq!(
        p["url"],
        json!({"format": "uri", "maxLength": 2083, "minLength": 1, "title": "Url", "type": "string", "x-nullable": true})
    );
    assert_eq!(item["required"], json!(["name", "price", "day"]));
    let mut expected = vec![
        "schema Item-Input.mixed: union integer | string emitted as string",
        "schema Item-Input.pair: tuple emitted as an array of one item schema",
        "schema Item-Input.pair[]: union integer | string emitted as string",
        "schema Item-Input.pet: union Cat | Dog merged into one object (all properties; required only where every variant requires it)",
        "schema Item-Input.pet2: union Cat | Dog merged into one object (all properties; required only where every variant requires it)",
        "schema Item-Input.price: union number | string emitted as string",
        "schema ValidationError.loc[]: union string | integer emitted as string",
    ];
    expected.sort_unstable();
    let mut warnings = warnings;
    warnings.sort_unstable();
    assert_eq!(warnings, expected);
}

#[test]
fn enum_ref_query_parameter_is_resolved() {
    // FastAPI: `lvl: Level = Level.low`, `color: Color | None = None`
    let (out, warnings) = param(
        json!({"$ref": "#/components/schemas/Level", "default": 1}),
        "query",
    );
    assert_eq!(
        out,
        json!({"default": 1, "enum": [1, 2], "type": "integer"})
    );
    assert!(warnings.is_empty());
    let (out, _) = param(
        json!({"anyOf": [{"$ref": "#/components/schemas/Color"}, {"type": "null"}], "title": "Color"}),
        "query",
    );
    assert_eq!(
        out,
        json!({"enum": ["red", "green"], "type": "string", "x-nullable": true})
    );
    let (out, _) = param(
        json!({"allOf": [{"$ref": "#/components/schemas/Color"}], "default": "red"}),
        "header",
    );
    assert_eq!(
        out,
        json!({"default": "red", "enum": ["red", "green"], "type": "string"})
    );
}

#[test]
fn array_parameters_get_items_and_collection_format() {
    // FastAPI: `colors: list[Color] = Query([])`
    let schema = json!({"default": [], "items": {"$ref": "#/components/schemas/Color"}, "title": "Colors", "type": "array"});
    let (out, _) = param(schema.clone(), "query");
    assert_eq!(
        out,
        json!({"collectionFormat": "multi", "default": [], "items": {"enum": ["red", "green"], "type": "string"}, "type": "array"})
    );
    assert_eq!(
        param(schema.clone(), "header").0["collectionFormat"],
        json!("csv")
    );
    assert_eq!(
        param(schema, "formData").0["collectionFormat"],
        json!("multi")
    );
    let (out, _) = param(
        json!({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}),
        "query",
    );
    assert_eq!(
        out["items"],
        json!({"collectionFormat": "csv", "items": {"type": "integer"}, "type": "array"})
    );
}

#[test]
fn primitive_parameters_keep_their_constraints() {
    // FastAPI: `limit: Annotated[int, Query(gt=0, le=500)] = 10`, `item_id: uuid.UUID`
    let (out, _) = param(
        json!({"default": 10, "exclusiveMinimum": 0, "maximum": 500, "title": "Limit", "type": "integer"}),
        "query",
    );
    assert_eq!(
        out,
        json!({"default": 10, "exclusiveMinimum": true, "maximum": 500, "minimum": 0, "type": "integer"})
    );
    let (out, _) = param(
        json!({"format": "uuid", "title": "Item Id", "type": "string"}),
        "path",
    );
    assert_eq!(out, json!({"format": "uuid", "type": "string"}));
    let (out, _) = param(
        json!({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "X-Token"}),
        "header",
    );
    assert_eq!(out, json!({"type": "string", "x-nullable": true}));
    let (out, warnings) = param(
        json!({"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}], "title": "Dec"}),
        "query",
    );
    assert_eq!(out, json!({"type": "string", "x-nullable": true}));
    assert_eq!(warnings, ["p: union number | string emitted as string"]);
}

#[test]
fn object_parameters_become_strings_with_a_warning() {
    let (out, warnings) = param(json!({"$ref": "#/components/schemas/Cat"}), "query");
    assert_eq!(out, json!({"type": "string"}));
    assert_eq!(
        warnings,
        ["p: parameter schema is not a primitive or an array of primitives; sent as a string"]
    );
    let (out, warnings) = param(
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Cat"}}),
        "query",
    );
    assert_eq!(
        out,
        json!({"collectionFormat": "multi", "items": {"type": "string"}, "type": "array"})
    );
    assert_eq!(
        warnings,
        ["p: array items are not primitives; sent as strings"]
    );
}

#[test]
fn recursive_parameter_refs_terminate() {
    let doc = json!({"components": {"schemas": {
        "L": {"type": "array", "items": {"$ref": "#/components/schemas/L"}},
        "M": {"anyOf": [{"$ref": "#/components/schemas/M"}, {"type": "integer"}]}
    }}});
    let mut notes = Notes::new(0);
    let out = parameter_fields(
        &json!({"$ref": "#/components/schemas/L"}),
        &doc,
        "query",
        "p",
        &mut notes,
    );
    let warnings = notes.lines();
    assert_eq!(out["type"], json!("array"));
    assert!(
        warnings.iter().any(|w| w.contains("recursive $ref")),
        "{warnings:?}"
    );
    let mut notes = Notes::new(0);
    let out = parameter_fields(
        &json!({"$ref": "#/components/schemas/M"}),
        &doc,
        "query",
        "p",
        &mut notes,
    );
    assert_eq!(Value::Object(out), json!({"type": "string"}));
}

#[test]
fn form_data_files_become_file_parameters() {
    let body = &fastapi()["components"]["schemas"]["Body_upload_upload_post"]["properties"];
    let (out, warnings) = param(body["file"].clone(), "formData");
    assert_eq!(out, json!({"type": "file"}));
    assert!(warnings.is_empty());
    let (out, warnings) = param(body["files"].clone(), "formData");
    assert_eq!(out, json!({"type": "file"}));
    assert_eq!(warnings.len(), 1);
    let (out, _) = param(body["count"].clone(), "formData");
    assert_eq!(out, json!({"type": "integer", "x-nullable": true}));
    // Outside a form a binary string stays a string.
    assert_eq!(
        param(body["file"].clone(), "query").0,
        json!({"format": "binary", "type": "string"})
    );
}

#[test]
fn a_default_that_breaks_its_own_constraints_is_dropped() {
    for schema in [
        json!({"type": "integer", "minimum": 1, "default": 0}),
        json!({"type": "integer", "maximum": 5, "exclusiveMaximum": 5, "default": 5}),
        json!({"type": "string", "maxLength": 2, "default": "abc"}),
        json!({"type": "string", "pattern": "^a$", "default": "b"}),
        json!({"type": "number", "multipleOf": 2, "default": 3}),
    ] {
        let mut notes = Notes::new(0);
        let out = body_schema(&schema, &json!({}), "t", &mut notes);
        assert!(out.get("default").is_none(), "{schema} → {out}");
    }
    let mut notes = Notes::new(0);
    let kept = body_schema(
        &json!({"type": "integer", "minimum": 1, "default": 3}),
        &json!({}),
        "t",
        &mut notes,
    );
    assert_eq!(kept["default"], 3);
}

#[test]
fn refs_reached_along_many_branches_stop_at_the_step_budget() {
    // Each level refers to the next four times: 4^n expansions without a budget.
    let mut schemas = serde_json::Map::new();
    for level in 0..30 {
        let next = json!({"$ref": format!("#/components/schemas/A{}", level + 1)});
        schemas.insert(
            format!("A{level}"),
            json!({"allOf": [next.clone(), next.clone(), next.clone(), next]}),
        );
    }
    schemas.insert("A30".into(), json!({"type": "string"}));
    let doc = json!({"components": {"schemas": schemas}});
    let mut notes = Notes::new(0);
    let out = parameter_fields(
        &json!({"$ref": "#/components/schemas/A0"}),
        &doc,
        "query",
        "q",
        &mut notes,
    );
    let warnings = notes.lines();
    assert_eq!(out.get("type"), Some(&json!("string")));
    assert!(
        warnings.iter().any(|w| w.contains("too large")),
        "{warnings:?}"
    );
    // Properties pointing at the next level, outside components (expanded in place).
    let mut defs = serde_json::Map::new();
    for level in 0..30 {
        let next = json!({"$ref": format!("#/x-defs/B{}", level + 1)});
        defs.insert(
            format!("B{level}"),
            json!({"type": "object", "properties":
            {"a": next.clone(), "b": next.clone(), "c": next.clone(), "d": next}}),
        );
    }
    let doc = json!({"x-defs": defs});
    let mut notes = Notes::new(0);
    let out = body_schema(&json!({"$ref": "#/x-defs/B0"}), &doc, "body", &mut notes);
    let warnings = notes.lines();
    assert!(out.to_string().len() < 10_000_000);
    assert!(
        warnings.iter().any(|w| w.contains("too large")),
        "{warnings:?}"
    );
}

#[test]
fn only_usable_x_ms_keys_survive() {
    let mut notes = Notes::new(0);
    let out = body_schema(
        &json!({"type": "string", "x-ms-summary": "Amount", "x-ms-visibility": "advanced",
                "x-ms-dynamic-values": {"operationId": "Nope"}, "x-ms-enum": "bad",
                "x-custom": 1, "xml": {"name": "a", "bogus": 1}}),
        &json!({}),
        "t",
        &mut notes,
    );
    assert_eq!(
        out,
        json!({"type": "string", "x-ms-summary": "Amount", "x-ms-visibility": "advanced", "x-custom": 1})
    );
    let out = body_schema(
        &json!({"x-ms-visibility": "hidden", "x-ms-summary": 5}),
        &json!({}),
        "t",
        &mut notes,
    );
    assert_eq!(out, json!({}));
}
