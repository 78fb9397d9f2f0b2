using Net.Pkcs11Interop.Common;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// The token cannot be used at all, as opposed to a key that cannot: <see cref="KeyState.Unreachable"/>
/// (module error, token absent) or <see cref="KeyState.AccessRevoked"/> (the PIN was refused).
/// <see cref="Pkcs11Store.GetKey"/> turns it into the key's state; other operations throw it.
/// </summary>
public sealed class Pkcs11Problem(KeyState state, string message, Exception? inner = null) : Exception(message, inner)
{
    public KeyState State { get; } = state;

    internal KeyStoreException ToKeyStoreException() => new(Message, this);
}

/// <summary>How the store reacts to each PKCS#11 return value (PKCS#11 v2.40 base specification, section 5.1).</summary>
internal static class Pkcs11Errors
{
    /// <summary>
    /// The session or the token went away (removed, reset, re-initialised): the sessions are
    /// dropped, the slot is looked up again by the token's label, and the operation runs once more.
    /// </summary>
    public static bool IsConnectionLost(CKR rv) => rv is
        CKR.CKR_SESSION_HANDLE_INVALID or CKR.CKR_SESSION_CLOSED or CKR.CKR_SESSION_COUNT or
        CKR.CKR_DEVICE_REMOVED or CKR.CKR_DEVICE_ERROR or CKR.CKR_DEVICE_MEMORY or
        CKR.CKR_TOKEN_NOT_PRESENT or CKR.CKR_TOKEN_NOT_RECOGNIZED or CKR.CKR_SLOT_ID_INVALID or
        CKR.CKR_CRYPTOKI_NOT_INITIALIZED or CKR.CKR_USER_NOT_LOGGED_IN or CKR.CKR_GENERAL_ERROR;

    /// <summary>The token refused the PIN: access is revoked until the pin file holds the right one.</summary>
    public static bool IsPinRefused(CKR rv) => rv is
        CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_EXPIRED or CKR.CKR_PIN_LOCKED;

    /// <summary>The name of a return value as the specification spells it, with its number.</summary>
    public static string Describe(CKR rv) => $"{rv} (0x{(ulong)rv:x8})";
}
