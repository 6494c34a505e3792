//! Reading a record from a query row whose columns are named like the record's fields: each
//! column is named once, in [`from_columns!`], instead of once as a field and again as a
//! string. Fields that are not a plain column (parsed JSON, a derived status, a nested record)
//! follow a `;` as ordinary `field: expression` pairs.

/// `Type { column: row.try_get("column")?, .., field: expression, .. }`: the listed columns
/// read by their field's name (a wrong type or a missing column is the `?`'s error, as when
/// written out), then the remaining fields as given.
macro_rules! from_columns {
    ($row:expr => $ty:ident {
        $($column:ident),* $(,)?
        $(; $($field:ident $(: $value:expr)?),+ $(,)?)?
    }) => {
        $ty {
            $($column: $row.try_get(stringify!($column))?,)*
            $($($field $(: $value)?,)+)?
        }
    };
}
pub(crate) use from_columns;
