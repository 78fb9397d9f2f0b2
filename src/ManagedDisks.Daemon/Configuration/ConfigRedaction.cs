namespace ManagedDisks.Daemon.Configuration;

/// <summary>
/// Which values <c>config show</c> must not print. Decided by the key's name alone, so a key added
/// later (a PKCS#11 <c>pin</c>, a <c>passphrase</c>) is hidden without anyone remembering to list it.
/// A path to a secret (<c>master_key_file</c>, <c>platform_key_secret</c>) is not the secret and stays visible:
/// an administrator needs it to check the file's owner and mode.
/// </summary>
internal static class ConfigRedaction
{
    public const string Redacted = "(redacted)";

    private static readonly HashSet<string> SecretWords = new(StringComparer.Ordinal)
    {
        "pin", "passphrase", "password", "passwd", "secret", "token",
    };

    // Keys that point at or name a thing, never hold it: a PKCS#11 token_label names a device.
    private static readonly string[] NotSecretSuffixes = ["_file", "_path", "_dir", "_socket", "_label", "_name", "_id"];

    public static bool IsSecret(string key, ConfigValueKind kind)
    {
        if (kind == ConfigValueKind.Path) return false;
        string name = key.ToLowerInvariant().Replace('-', '_');
        if (NotSecretSuffixes.Any(name.EndsWith)) return false;
        return name.Split('_', '.').Any(SecretWords.Contains) || name.Contains("private_key", StringComparison.Ordinal);
    }

    /// <summary>The value to print for a key: itself, or <see cref="Redacted"/> when the key names a secret and has a value.</summary>
    public static object? Apply(string key, ConfigValueKind kind, object? value) =>
        value is not null && IsSecret(key, kind) ? Redacted : value;
}
