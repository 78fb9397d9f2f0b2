namespace ManagedDisks.Keys.Vault;

/// <summary>
/// Marks a <see cref="KeyStoreException"/> that is a policy refusal (purge protection) rather than
/// a failure, so the audit log can record "denied" instead of "error".
/// </summary>
public static class VaultRefusal
{
    private const string Marker = "ManagedDisks.Keys.Vault.Refused";

    public static bool IsRefusal(Exception e) => e.Data.Contains(Marker);

    internal static KeyStoreException Create(string message)
    {
        var e = new KeyStoreException(message);
        e.Data[Marker] = true;
        return e;
    }
}
