//! What a user importing a file relies on: rows read as written, errors that
//! name the line and column, and a split that only the inputs decide.

use super::*;

fn spec(format: Format, input: InputColumns) -> ImportSpec {
    ImportSpec::new(format, input)
}

fn tabular(features: Option<&[&str]>) -> InputColumns {
    InputColumns::Tabular {
        features: features.map(|f| f.iter().map(|s| s.to_string()).collect()),
    }
}

fn text_column(column: &str) -> InputColumns {
    InputColumns::Text {
        column: column.to_owned(),
    }
}

fn read(bytes: &[u8], spec: &ImportSpec) -> Result<Vec<Row>, ImportError> {
    read_rows(bytes, spec)?.collect()
}

fn csv_tabular(bytes: &str) -> Result<Vec<Row>, ImportError> {
    read(bytes.as_bytes(), &spec(Format::Csv, tabular(None)))
}

#[test]
fn csv_with_commas_reads_every_column_but_the_label_as_features() {
    let rows = csv_tabular("a,label,b\n1,x,2.5\n-3e2,y,0\n").unwrap();
    assert_eq!(
        rows,
        vec![
            Row {
                line: 2,
                input: Input::Tabular(vec![1.0, 2.5]),
                label: "x".into()
            },
            Row {
                line: 3,
                input: Input::Tabular(vec![-300.0, 0.0]),
                label: "y".into()
            },
        ]
    );
}

#[test]
fn csv_with_semicolons_crlf_and_a_byte_order_mark_reads_the_same() {
    let rows = csv_tabular("\u{feff}a;label;b\r\n1;x;2.5\r\n-3e2;y;0\r\n").unwrap();
    assert_eq!(rows, csv_tabular("a,label,b\n1,x,2.5\n-3e2,y,0\n").unwrap());
}

#[test]
fn chosen_features_come_in_the_chosen_order() {
    let s = spec(Format::Csv, tabular(Some(&["c", "a"])));
    let reader = read_rows(&b"a,b,c,label\n1,2,3,x\n"[..], &s).unwrap();
    assert_eq!(reader.feature_names(), ["c", "a"]);
    let rows: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(rows[0].input, Input::Tabular(vec![3.0, 1.0]));
}

#[test]
fn quoted_text_keeps_delimiters_quotes_and_newlines() {
    let file = "label,text\r\npos,\"good, \"\"really\"\" good\nfilm\"\r\n\r\nneg,plain";
    let rows = read(file.as_bytes(), &spec(Format::Csv, text_column("text"))).unwrap();
    assert_eq!(rows[0].input, Input::Text("good, \"really\" good\nfilm".into()));
    assert_eq!(rows[1].line, 5, "the quoted newline and the blank line count");
    assert_eq!(rows[1].label, "neg");
}

#[test]
fn json_lines_read_like_csv_with_integer_labels_as_their_decimal_string() {
    let file = r#"{"a": 1, "label": 5, "b": "2.5"}

{"b": 0, "label": "7", "a": -300}
"#;
    let reader = read_rows(file.as_bytes(), &spec(Format::JsonLines, tabular(None))).unwrap();
    assert_eq!(reader.feature_names(), ["a", "b"], "first object's key order");
    let rows: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(rows[0].input, Input::Tabular(vec![1.0, 2.5]));
    assert_eq!(rows[0].label, "5");
    assert_eq!(
        (rows[1].line, &rows[1].label),
        (3, &"7".to_owned()),
        "blank line skipped"
    );
    assert_eq!(rows[1].input, Input::Tabular(vec![-300.0, 0.0]));
}

#[test]
fn json_lines_text_rows() {
    let file = "{\"text\": \"Great film\", \"label\": \"pos\"}\n{\"label\": \"neg\", \"text\": \"dull\"}\n";
    let rows = read(file.as_bytes(), &spec(Format::JsonLines, text_column("text"))).unwrap();
    assert_eq!(rows[1].input, Input::Text("dull".into()));
    assert_eq!(rows[1].label, "neg");
}

/// The error of the first failing row, as the user reads it.
fn first_error(format: Format, input: InputColumns, file: &[u8]) -> String {
    match read(file, &spec(format, input)) {
        Ok(rows) => panic!("expected an error, read {rows:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_csv_rows_are_refused_naming_line_and_column() {
    let cases: &[(&str, &str)] = &[
        ("a,label\n1,x\n1,x,3\n", "line 3: 3 columns, the header has 2"),
        ("a,label\n1,x\n2,\n", "line 3, column label: missing label"),
        ("a,label\n1,x\nabc,y\n", "line 3, column a: \"abc\" is not a number"),
        ("a,label\n,x\n", "line 2, column a: \"\" is not a number"),
        ("a,label\ninf,x\n", "line 2, column a: \"inf\" is not a finite number"),
        ("a,label\nNaN,x\n", "line 2, column a: \"NaN\" is not a finite number"),
        ("label\nx\n", "line 1: no feature columns besides the label"),
        ("a,a,label\n1,2,x\n", "line 1: column \"a\" appears twice"),
        ("", "the file is empty"),
        ("a,label\n1,x\n\"2,y\n", "line 3: a quoted field is never closed"),
    ];
    for (file, want) in cases {
        assert_eq!(
            first_error(Format::Csv, tabular(None), file.as_bytes()),
            *want,
            "{file:?}"
        );
    }
    assert_eq!(
        first_error(Format::Csv, tabular(Some(&["b"])), b"a,label\n1,x\n"),
        "line 1: no column named \"b\" (the columns are [\"a\", \"label\"])"
    );
    assert_eq!(
        first_error(Format::Csv, text_column("text"), b"text,label\nok,x\n \t,y\n"),
        "line 3, column text: empty text"
    );
    assert_eq!(
        first_error(Format::Csv, text_column("text"), b"text,label\nok,x\nbad \xff,y\n"),
        "line 3, column text: not valid UTF-8"
    );
}

#[test]
fn bad_json_lines_are_refused_naming_line_and_column() {
    let cases: &[(&str, &str)] = &[
        (
            "{\"a\": 1, \"label\": \"x\"}\n{\"a\": 1}\n",
            "line 2: 1 columns, the header has 2",
        ),
        (
            "{\"a\": 1, \"label\": \"x\"}\n{\"a\": 1, \"l\": 2}\n",
            "line 2, column label: missing",
        ),
        ("{\"a\": 1, \"label\": null}\n", "line 1, column label: missing label"),
        (
            "{\"a\": 1, \"label\": 2.5}\n",
            "line 1, column label: label 2.5 is not a string or an integer",
        ),
        (
            "{\"a\": true, \"label\": 1}\n",
            "line 1, column a: \"true\" is not a number",
        ),
        (
            "{\"a\": 1, \"label\": 1}\n[1, 2]\n",
            "line 2: not a JSON object: invalid type: sequence, expected a JSON object at line 1 column 0",
        ),
    ];
    for (file, want) in cases {
        assert_eq!(
            first_error(Format::JsonLines, tabular(None), file.as_bytes()),
            *want,
            "{file:?}"
        );
    }
    assert_eq!(
        first_error(
            Format::JsonLines,
            text_column("text"),
            b"{\"label\": 1, \"text\": \"ok \xff\"}\n"
        ),
        "line 1, column text: not valid UTF-8"
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_and_one_at_the_limit_is_not() {
    let file = "a,label\n1,x\n2,y\n"; // 16 bytes
    let mut s = spec(Format::Csv, tabular(None));
    s.max_bytes = 16;
    assert_eq!(read(file.as_bytes(), &s).unwrap().len(), 2);
    s.max_bytes = 15;
    assert!(matches!(
        read(file.as_bytes(), &s),
        Err(ImportError::TooLarge { limit: 15 })
    ));
    s.format = Format::JsonLines;
    s.max_bytes = 10;
    let json = "{\"a\": 1, \"label\": 1}\n";
    assert!(matches!(
        read(json.as_bytes(), &s),
        Err(ImportError::TooLarge { limit: 10 })
    ));
}

/// A seeded set of labelled text rows: class i's rows all say "class i".
fn text_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            line: i as u64 + 2,
            input: Input::Text(format!("row {i} of class {}", i % 3)),
            label: format!("c{}", i % 3),
        })
        .collect()
}

fn split(rows: &[Row], golden: Golden) -> (Vec<Part>, Result<SplitSummary, ImportError>) {
    let mut splitter = Splitter::new(golden);
    let parts = rows.iter().map(|r| splitter.assign(r).0).collect();
    (parts, splitter.finish(&[]))
}

#[test]
fn the_split_depends_on_the_inputs_not_their_order() {
    let rows = text_rows(3000);
    let (parts, summary) = split(&rows, Golden::Share(GoldenShare::DEFAULT));
    let mut reversed = rows.clone();
    reversed.reverse();
    let (mut reversed_parts, reversed_summary) = split(&reversed, Golden::Share(GoldenShare::DEFAULT));
    reversed_parts.reverse();
    assert_eq!(parts, reversed_parts);
    let summary = summary.unwrap();
    assert_eq!(summary, reversed_summary.unwrap());
    // 3,000 rows at a 0.2 share: 600 golden expected, sd = sqrt(3000 * 0.2 * 0.8) = 21.9;
    // 4 sd either side is [512, 688].
    let golden: u64 = summary.classes.values().map(|c| c.golden).sum();
    assert!((512..=688).contains(&golden), "{golden} golden rows");
}

#[test]
fn equal_inputs_after_normalization_land_in_the_same_part() {
    let mut splitter = Splitter::new(Golden::Share(GoldenShare::new(0.5).unwrap()));
    for i in 0..200 {
        let a = Row {
            line: 2,
            input: Input::Text(format!("Review number {i}")),
            label: "x".into(),
        };
        let b = Row {
            input: Input::Text(format!("  review   NUMBER {i} ")),
            ..a.clone()
        };
        assert_eq!(splitter.assign(&a), splitter.assign(&b));
    }
}

#[test]
fn a_class_without_golden_rows_or_base_rows_is_refused() {
    // One row of class "rare": it lands in one part, leaving the other empty.
    let mut rows = text_rows(300);
    rows.push(Row {
        line: 999,
        input: Input::Text("the only rare row".into()),
        label: "rare".into(),
    });
    let err = split(&rows, Golden::Share(GoldenShare::DEFAULT)).1.unwrap_err();
    assert!(
        matches!(&err, ImportError::NoGoldenRows { class, rows: 1, .. } if class == "rare")
            || matches!(&err, ImportError::EmptyClass { class } if class == "rare"),
        "{err}"
    );
    // A declared class that no row has.
    let mut splitter = Splitter::new(Golden::Share(GoldenShare::DEFAULT));
    for r in &text_rows(300) {
        splitter.assign(r);
    }
    let err = splitter.finish(&["c0".into(), "missing".into()]).unwrap_err();
    assert_eq!(err.to_string(), "class \"missing\" has no rows to train on");
}

#[test]
fn an_explicit_golden_file_must_cover_every_class() {
    let rows = text_rows(30);
    let mut splitter = Splitter::new(Golden::File);
    assert!(rows.iter().all(|r| splitter.assign(r).0 == Part::Base));
    for r in rows.iter().filter(|r| r.label != "c2") {
        splitter.assign_golden_file_row(r);
    }
    let err = splitter.finish(&[]).unwrap_err();
    assert_eq!(err.to_string(), "the golden file has no rows of class \"c2\"");
}

#[test]
fn golden_shares_outside_zero_to_one_are_refused_and_an_empty_file_has_no_rows() {
    for share in [0.0, 1.0, -0.1, f64::NAN] {
        assert!(GoldenShare::new(share).is_err(), "{share}");
    }
    assert!(matches!(split(&[], Golden::File).1, Err(ImportError::NoRows)));
}

#[test]
fn the_same_input_from_csv_or_json_lines_has_the_same_hash() {
    // Golden rows may come from a CSV import and feedback as JSON: the
    // leakage check compares their hashes.
    let csv = read(b"a,b,label\n1.50,2,5\n", &spec(Format::Csv, tabular(None))).unwrap();
    let json = read(
        b"{\"a\": 1.5, \"b\": 2.0, \"label\": 5}\n",
        &spec(Format::JsonLines, tabular(None)),
    )
    .unwrap();
    assert_eq!(input_hash(&csv[0].input), input_hash(&json[0].input));
    assert_eq!(csv[0].label, json[0].label);
}
