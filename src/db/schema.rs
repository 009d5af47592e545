//! Diesel table definitions, written to match `migrations/{sqlite,postgres}` (identical
//! columns in both trees; `db::tests` checks the trees have the same migrations).

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        plan -> Text,
        rate_limit_per_minute -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        password_changed_at -> BigInt,
        name -> Nullable<Text>,
    }
}

diesel::table! {
    memberships (org_id, user_id) {
        org_id -> Text,
        user_id -> Text,
        role -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        org_id -> Nullable<Text>,
        name -> Text,
        is_public -> Bool,
        is_resource_server -> Bool,
        redirect_uris -> Text,
        grant_types -> Text,
        scope -> Text,
        logo_uri -> Nullable<Text>,
        client_uri -> Nullable<Text>,
        registration_token_hash -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        registration_scope_ceiling -> Nullable<Text>,
        resources -> Text,
        post_logout_redirect_uris -> Text,
        id_token_signed_response_alg -> Text,
        jwks -> Nullable<Text>,
        jwks_uri -> Nullable<Text>,
    }
}

diesel::table! {
    client_assertion_jtis (jti_hash) {
        jti_hash -> Text,
        client_id -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    client_secrets (id) {
        id -> Text,
        client_id -> Text,
        secret_hash -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        resources -> Text,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        scope -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        resource -> Text,
        auth_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    pending_authorizations (id) {
        id -> Text,
        session_id -> Text,
        user_id -> Text,
        client_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        state -> Nullable<Text>,
        code_challenge -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        resource -> Text,
        nonce -> Nullable<Text>,
        auth_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        grant_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        code_challenge -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
        nonce -> Nullable<Text>,
        auth_time -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        scope -> Text,
        generation -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        absolute_expires_at -> BigInt,
        rotated_at -> Nullable<BigInt>,
        replaced_by -> Nullable<Text>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    revoked_jtis (jti) {
        jti -> Text,
        revoked_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        org_id -> Text,
        name -> Text,
        key_type -> Text,
        key_hash -> Text,
        prefix -> Text,
        last_six -> Text,
        scope -> Text,
        created_by -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        rate_limit_per_minute -> Nullable<BigInt>,
    }
}

diesel::table! {
    rate_limit_windows (key_id, window_start) {
        key_id -> Text,
        window_start -> BigInt,
        count -> BigInt,
    }
}

diesel::table! {
    key_usage (key_id, hour_start, code) {
        org_id -> Text,
        key_id -> Text,
        hour_start -> BigInt,
        code -> Text,
        count -> BigInt,
    }
}

diesel::table! {
    org_policies (org_id) {
        org_id -> Text,
        max_key_lifetime_days -> Nullable<BigInt>,
        members_can_create_keys -> Bool,
        revoke_leaked_keys -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    key_requests (id) {
        id -> Text,
        org_id -> Text,
        requested_by -> Text,
        name -> Text,
        scope -> Text,
        reason -> Text,
        expires_in_days -> Nullable<BigInt>,
        status -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<BigInt>,
        key_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Text,
        org_id -> Nullable<Text>,
        csrf_secret -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        sign_from -> BigInt,
        purpose -> Text,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        org_id -> Nullable<Text>,
        actor -> Text,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        details -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    device_codes (device_code_hash) {
        device_code_hash -> Text,
        user_code_hash -> Text,
        client_id -> Text,
        scope -> Text,
        resource -> Text,
        status -> Text,
        user_id -> Nullable<Text>,
        auth_time -> Nullable<BigInt>,
        poll_interval -> BigInt,
        polled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    client_resources (uri) {
        uri -> Text,
        client_id -> Text,
    }
}

diesel::joinable!(memberships -> organizations (org_id));
diesel::joinable!(client_resources -> clients (client_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(clients -> organizations (org_id));
diesel::joinable!(client_secrets -> clients (client_id));
diesel::joinable!(grants -> clients (client_id));
diesel::joinable!(consents -> clients (client_id));
diesel::joinable!(refresh_tokens -> grants (grant_id));
diesel::joinable!(authorization_codes -> grants (grant_id));
diesel::joinable!(api_keys -> organizations (org_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    users,
    memberships,
    clients,
    client_secrets,
    consents,
    grants,
    pending_authorizations,
    authorization_codes,
    refresh_tokens,
    revoked_jtis,
    client_assertion_jtis,
    api_keys,
    rate_limit_windows,
    key_usage,
    org_policies,
    key_requests,
    sessions,
    signing_keys,
    audit_events,
    client_resources,
);

// MCP-ready authorization (docs/spec.md §8): clients registered without a credential.
diesel::table! {
    open_registrations (client_id) {
        client_id -> Text,
        ip -> Text,
        created_at -> BigInt,
    }
}
diesel::allow_tables_to_appear_in_same_query!(open_registrations, clients);
diesel::allow_tables_to_appear_in_same_query!(open_registrations, grants);
diesel::allow_tables_to_appear_in_same_query!(open_registrations, refresh_tokens);

// Invitations (docs/spec.md §5): an email invited into an organization with a role.
diesel::table! {
    invitations (id) {
        id -> Text,
        org_id -> Text,
        email -> Text,
        role -> Text,
        token_hash -> Text,
        invited_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        accepted_at -> Nullable<BigInt>,
        accepted_by -> Nullable<Text>,
        declined_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}
diesel::joinable!(invitations -> organizations (org_id));
diesel::allow_tables_to_appear_in_same_query!(invitations, organizations);
diesel::allow_tables_to_appear_in_same_query!(invitations, users);
