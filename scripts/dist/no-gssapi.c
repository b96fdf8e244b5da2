/* Linked only into the self-contained build. Debian's libgit2.a offers HTTP "Negotiate"
 * (Kerberos) authentication, and Debian ships no static GSS-API library. provision never speaks
 * HTTP through libgit2 (its history is local; the fleet moves it as bundles over OpenSSH), so
 * each GSS-API call libgit2 could make fails with GSS_S_FAILURE instead of dragging Kerberos in. */
typedef unsigned int OM_uint32;
#define GSS_S_FAILURE (13u << 16)

static OM_uint32 unavailable(OM_uint32 *minor) {
    if (minor) *minor = 0;
    return GSS_S_FAILURE;
}

void *GSS_C_NT_HOSTBASED_SERVICE = 0;
OM_uint32 gss_init_sec_context(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_delete_sec_context(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_release_buffer(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_release_oid_set(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_release_name(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_indicate_mechs(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_import_name(OM_uint32 *minor) { return unavailable(minor); }
OM_uint32 gss_display_status(OM_uint32 *minor) { return unavailable(minor); }
