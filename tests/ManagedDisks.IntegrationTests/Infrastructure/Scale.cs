namespace ManagedDisks.IntegrationTests.Infrastructure;

/// <summary>
/// How long a reliability test runs. CI runs the short default; tests/reliability/faults.sh
/// sets the variable to run the same code for minutes and records the figures it prints.
/// </summary>
public static class Scale
{
    public static int Get(string variable, int quick)
    {
        string? value = Environment.GetEnvironmentVariable(variable);
        return int.TryParse(value, out int n) && n > 0 ? n : quick;
    }

    /// <summary>A line the reliability scripts collect from the test output.</summary>
    public static void Figure(string line) => TestContext.Out.WriteLine("FIGURES: " + line);
}
