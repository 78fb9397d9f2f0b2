namespace ManagedDisks.Keys.Vault;

/// <summary>The operation names of an access policy as Key Vault spells them: get, wrapKey, unwrapKey.</summary>
public static class KeyOperationNames
{
    private static readonly (string Name, KeyOperations Operation)[] Names =
        [("get", KeyOperations.Get), ("wrapKey", KeyOperations.WrapKey), ("unwrapKey", KeyOperations.UnwrapKey)];

    public static string Valid => string.Join(", ", Names.Select(n => n.Name));

    public static IReadOnlyList<string> ToNames(KeyOperations operations) =>
        Names.Where(n => operations.HasFlag(n.Operation)).Select(n => n.Name).ToArray();

    public static string Format(KeyOperations operations) =>
        operations == KeyOperations.None ? "none" : string.Join(',', ToNames(operations));

    /// <summary>Parses a comma-separated list (names compared ignoring case); false with a message saying what is accepted.</summary>
    public static bool TryParse(string text, out KeyOperations operations, out string? error)
    {
        operations = KeyOperations.None;
        error = null;
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var match = Names.FirstOrDefault(n => string.Equals(n.Name, part, StringComparison.OrdinalIgnoreCase));
            if (match.Name is null)
            {
                error = $"'{part}' is not a key operation; use a comma-separated list of {Valid}";
                return false;
            }
            operations |= match.Operation;
        }
        if (operations == KeyOperations.None)
        {
            error = $"no operations given; use a comma-separated list of {Valid} (to remove a grant, revoke it)";
            return false;
        }
        return true;
    }

    internal static KeyOperations Parse(IEnumerable<string> names)
    {
        var operations = KeyOperations.None;
        foreach (string name in names)
            operations |= Names.FirstOrDefault(n => n.Name == name).Operation;
        return operations;
    }
}
