namespace ManagedDisks.Keys.Lifecycle;

/// <summary>Whether a disk's key can unwrap its DEK now.</summary>
public enum KeyUsability
{
    Usable,
    /// <summary>Disabled, deleted, expired, not found, or the identity's grant was removed.</summary>
    Revoked,
    /// <summary>The store cannot say (HSM down, token absent): not a revocation, but not forever either.</summary>
    Unreachable,
}

/// <summary>A key check's outcome; <see cref="Reason"/> says what is wrong and how to fix it.</summary>
public sealed record KeyAccess(KeyUsability Usability, string Reason)
{
    public static readonly KeyAccess Usable = new(KeyUsability.Usable, "");

    public bool IsUsable => Usability == KeyUsability.Usable;
}
