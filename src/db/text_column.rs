//! Enums stored as TEXT: [`text_column!`] gives a type with `as_str` and `parse` the
//! diesel `ToSql`/`FromSql` impls for both backends and the `MultiConnection`, so rows
//! carry the enum itself. A stored value that does not parse is a loud deserialization
//! error, never a silent default.

/// Implements TEXT storage for `$ty` (which has `fn as_str(self) -> &'static str` and
/// `fn parse(&str) -> Option<Self>`, and derives `AsExpression, FromSqlRow` with
/// `#[diesel(sql_type = diesel::sql_types::Text)]`).
#[macro_export]
macro_rules! text_column {
    ($ty:ty) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                out.set_value(self.as_str());
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    &mut out.reborrow(),
                )
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, $crate::db::MultiBackend> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, $crate::db::MultiBackend>,
            ) -> diesel::serialize::Result {
                out.set_value((diesel::sql_types::Text, self));
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $ty
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                use diesel::deserialize::FromSql;
                use diesel::sql_types::Text;
                let s = <String as FromSql<Text, DB>>::from_sql(bytes)?;
                <$ty>::parse(&s).ok_or_else(|| {
                    format!(concat!("stored ", stringify!($ty), " {:?} is unknown"), s).into()
                })
            }
        }
    };
}
