namespace ManagedDisks.Keys.Vault;

/// <summary>A change to one date attribute: leave it (<c>default</c>), or set it to a date or to none.</summary>
public readonly record struct DateChange(bool IsChange, DateTimeOffset? Value)
{
    public static DateChange Keep => default;
    public static DateChange To(DateTimeOffset? value) => new(true, value);

    internal DateTimeOffset? Apply(DateTimeOffset? current) => IsChange ? Value : current;
}
