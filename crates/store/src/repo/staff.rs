use diesel::prelude::*;

use crate::models::StaffUser;
use crate::schema::staff_users;
use crate::{update_where, DbConn, StoreError};

pub fn insert(conn: &mut DbConn, row: &StaffUser) -> Result<(), StoreError> {
    direct!(conn, {
        diesel::insert_into(staff_users::table)
            .values(row)
            .execute(conn)?;
        Ok(())
    })
}

pub fn update(conn: &mut DbConn, row: &StaffUser) -> Result<(), StoreError> {
    direct!(conn, {
        update_where(
            staff_users::table,
            staff_users::table.primary_key().eq(&row.id),
            row,
        )
        .execute(conn)?;
        Ok(())
    })
}

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<StaffUser>, StoreError> {
    direct!(conn, {
        Ok(staff_users::table
            .find(id)
            .select(StaffUser::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn find_by_email(
    conn: &mut DbConn,
    email_lower: &str,
) -> Result<Option<StaffUser>, StoreError> {
    direct!(conn, {
        Ok(staff_users::table
            .filter(staff_users::email_lower.eq(email_lower))
            .select(StaffUser::as_select())
            .get_result(conn)
            .optional()?)
    })
}

pub fn list(conn: &mut DbConn) -> Result<Vec<StaffUser>, StoreError> {
    direct!(conn, {
        Ok(staff_users::table
            .order(staff_users::email_lower.asc())
            .select(StaffUser::as_select())
            .load(conn)?)
    })
}
