using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Tests;

public class ConfigLoaderTests
{
    [Test]
    public void ReadsEveryKey()
    {
        var settings = ConfigLoader.Load("""
            [daemon]
            state_dir = "/srv/md"
            listen = ["unix:nbd.sock", "tcp:127.0.0.1:10809", "tcp:[::1]:10810"]
            admin_socket = "/run/md/admin.sock"
            max_connections = 32
            handshake_timeout = "2s"
            connection_inflight_bytes = "128M"
            platform_key_secret = "/run/credentials/md/platform-key"

            [[disk]]
            name = "disk1"
            size = "10G"
            description = "database"

            [[disk]]
            name = "ro"
            size = "4096"
            path = "/data/ro.img"
            read_only = true
            sector_size = 512
            detect_zeroes = true
            """, "test.toml", "/etc");

        Assert.That(settings.StateDir, Is.EqualTo("/srv/md"));
        Assert.That(settings.Listen.Select(l => l.EndPoint.ToString()),
            Is.EqualTo(new[] { "/srv/md/nbd.sock", "127.0.0.1:10809", "[::1]:10810" }));
        Assert.That(settings.Listen[0].EndPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(settings.Listen[1].EndPoint, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 10809)));
        Assert.That(settings.AdminSocket, Is.EqualTo("/run/md/admin.sock"));
        Assert.That(settings.PlatformKeyFile, Is.EqualTo("/srv/md/keys/platform-key.pem"));
        Assert.That(settings.PlatformKeySecretFile, Is.EqualTo("/run/credentials/md/platform-key"));
        Assert.That(settings.Server.MaxConnections, Is.EqualTo(32));
        Assert.That(settings.Server.HandshakeTimeout, Is.EqualTo(TimeSpan.FromSeconds(2)));
        Assert.That(settings.Server.MaxInFlightBytesPerConnection, Is.EqualTo(128L << 20));
        Assert.That(settings.Disks, Is.EqualTo(new[]
        {
            new DiskSettings("disk1", 10L << 30, "/srv/md/disks/disk1.img", "database", false),
            new DiskSettings("ro", 4096, "/data/ro.img", "", true, 512, true),
        }));
    }

    [Test]
    public void RelativeStateDirIsUnderTheConfigFilesFolder()
    {
        var settings = ConfigLoader.Load("[daemon]\nstate_dir = \"state\"\n", "x.toml", "/etc/md");
        Assert.That(settings.StateDir, Is.EqualTo("/etc/md/state"));
        Assert.That(settings.Listen.Single().Text, Is.EqualTo("unix:/etc/md/state/nbd.sock"));
    }

    [Test]
    public void EmbeddedDefaultServesDisk0InTheWorkingDirectory()
    {
        var settings = ConfigLoader.LoadEmbeddedDefault("/home/u");
        Assert.That(settings.StateDir, Is.EqualTo("/home/u/managed-disks-state"));
        Assert.That(settings.Listen.Select(l => l.Text), Is.EqualTo(new[] { "unix:/home/u/managed-disks-state/nbd.sock", "tcp:127.0.0.1:10809" }));
        Assert.That(settings.Disks.Single().Name, Is.EqualTo("disk0"));
        Assert.That(settings.Disks.Single().Size, Is.EqualTo(1L << 30));
    }

    [Test]
    public void ReportsEveryProblemAtOnce()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("""
            [daemon]
            listen = ["udp:1.2.3.4:5", "tcp:nohost"]
            handshake_timeout = "soon"
            max_connections = 0

            [[disk]]
            name = "bad name!"
            size = "1G"

            [[disk]]
            name = "a"
            size = "12Q"

            [[disk]]
            name = "a"
            size = "1000"

            [[disk]]
            name = "nosize"

            [[disk]]
            name = "odd"
            size = "1M"
            sector_size = 1024
            """, "bad.toml", "/"))!;

        Assert.That(e.Message, Does.Contain("bad.toml has 10 problems"));
        Assert.That(e.Message, Does.Contain("sector_size must be 512 or 4096, not 1024"));
        Assert.That(e.Message, Does.Contain("'udp:1.2.3.4:5' must start with unix: or tcp:"));
        Assert.That(e.Message, Does.Contain("tcp:ADDRESS:PORT"));
        Assert.That(e.Message, Does.Contain("handshake_timeout: 'soon'"));
        Assert.That(e.Message, Does.Contain("max_connections: 0"));
        Assert.That(e.Message, Does.Contain("[[disk]] 'bad name!': name must be"));
        Assert.That(e.Message, Does.Contain("size '12Q'"));
        Assert.That(e.Message, Does.Contain("declared twice"));
        Assert.That(e.Message, Does.Contain("not a multiple of 4096"));
        Assert.That(e.Message, Does.Contain("[[disk]] 'nosize': size is missing"));
    }

    [Test]
    public void TomlSyntaxErrorsNameTheFileAndLine()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("[daemon]\nstate_dir = \n", "broken.toml", "/"))!;
        Assert.That(e.Message, Does.StartWith("broken.toml"));
        Assert.That(e.Message, Does.Contain("broken.toml:2:13: "));
    }

    [Test]
    public void EveryProblemNamesItsLineInLineOrder()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("""
            [daemon]
            max_connections = 0
            handshake_timeout = "soon"

            [[disk]]
            name = "a"
            size = "12Q"

            # the header is where a missing key is reported
            [[disk]]
            name = "nosize"

            [[disk]]
            name = "odd"
            size = "1M"
            sector_size = 1024
            """, "bad.toml", "/"))!;

        Assert.That(e.Message, Is.EqualTo("""
            bad.toml has 5 problems:
              bad.toml:2: [daemon] max_connections: 0 is not between 1 and 100000
              bad.toml:3: [daemon] handshake_timeout: 'soon' is not a duration like "10s" or "1m"
              bad.toml:7: [[disk]] 'a': size '12Q' is not a size like "512M", "10G" or a byte count
              bad.toml:10: [[disk]] 'nosize': size is missing, e.g. size = "10G"
              bad.toml:16: [[disk]] 'odd': sector_size must be 512 or 4096, not 1024
            """));
    }

    [Test]
    public void ABadElementOfAMultiLineListIsReportedOnItsOwnLine()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("""
            [daemon]
            listen = [
              "unix:nbd.sock",
              "udp:1.2.3.4:5",
            ]
            """, "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("x.toml:4: [daemon] listen: 'udp:1.2.3.4:5' must start with unix: or tcp:"));
    }

    [Test]
    public void MissingKeysOfAnEncryptionSetAreReportedOnItsHeader()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("""
            [[key_store]]
            name = "vault1"

            [[encryption_set]]
            name = "des1"
            [[encryption_set]]
            name = "des2"
            key_store = "nope"
            key = "kek"
            """, "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("x.toml:4: [[encryption_set]] 'des1': key_store is missing"));
        Assert.That(e.Message, Does.Contain("x.toml:4: [[encryption_set]] 'des1': key is missing"));
        Assert.That(e.Message, Does.Contain("x.toml:8: [[encryption_set]] 'des2': key_store 'nope' is not a declared [[key_store]]"));
    }

    [TestCase("[daemon]\nstat_dir = \"x\"\n", "x.toml:2: [daemon] unknown key 'stat_dir'; did you mean 'state_dir'?")]
    [TestCase("[daemon]\nState-Dir = \"x\"\n", "x.toml:2: [daemon] unknown key 'State-Dir'; did you mean 'state_dir'?")]
    [TestCase("[daemon]\nmax_conections = 5\n", "x.toml:2: [daemon] unknown key 'max_conections'; did you mean 'max_connections'?")]
    [TestCase("[[disk]]\nname = \"a\"\nsize = \"1G\"\nszie = 1\n", "x.toml:4: [[disk]] 'a': unknown key 'szie'; did you mean 'size'?")]
    [TestCase("[[disk]]\nname = \"a\"\nsize = \"1G\"\nreadonly = true\n", "x.toml:4: [[disk]] 'a': unknown key 'readonly'; did you mean 'read_only'?")]
    [TestCase("[daemon]\nsize = \"1G\"\n", "x.toml:2: [daemon] unknown key 'size'; 'size' is a key of [[disk]]")]
    [TestCase("[daemon]\nzzz = 1\n", "x.toml:2: [daemon] unknown key 'zzz'; [daemon] has state_dir, listen, admin_socket, max_connections,")]
    [TestCase("[daemon]\n[daemon.tls]\ncert = \"x\"\n", "x.toml:2: [daemon] unknown table [daemon.tls];")]
    [TestCase("state_dir = \"/srv\"\n", "x.toml:1: 'state_dir' is outside any table; it is a key of [daemon]: move it below that header")]
    public void UnknownKeysAreErrorsWithASuggestion(string toml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(toml, "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain(expected));
    }

    [TestCase("[deamon]\n", "x.toml:1: unknown table [deamon]; did you mean [daemon]?")]
    [TestCase("[daemon]\n\n[[disks]]\nname = \"a\"\n", "x.toml:3: unknown table [disks]; did you mean [[disk]]?")]
    [TestCase("[[keystore]]\nname = \"a\"\n", "x.toml:1: unknown table [keystore]; did you mean [[key_store]]?")]
    [TestCase("[volumes]\n", "x.toml:1: unknown table [volumes]; the tables are [daemon], [timers], [tls], [metrics], [[key_store]], [[encryption_set]], [[disk]]")]
    [TestCase("[disk]\nname = \"a\"\n", "x.toml:1: [disk] must be written [[disk]], one per disk")]
    [TestCase("[[daemon]]\n", "x.toml:1: [daemon] is one table; write [daemon], not [[daemon]]")]
    public void UnknownOrMisshapenTablesAreErrors(string toml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(toml, "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain(expected));
    }

    [TestCase("[daemon]\nmax_connections = \"32\"\n", "x.toml:2: [daemon] max_connections must be an integer, not the string \"32\"")]
    [TestCase("[daemon]\nstate_dir = 5\n", "x.toml:2: [daemon] state_dir must be a string (a path), not the integer 5")]
    [TestCase("[daemon]\nlisten = \"unix:a.sock\"\n", "x.toml:2: [daemon] listen must be an array of strings, e.g. [\"a\", \"b\"], not the string \"unix:a.sock\"")]
    [TestCase("[daemon]\nlisten = [\"unix:a.sock\", 10809]\n", "x.toml:2: [daemon] listen must be an array of strings, e.g. [\"a\", \"b\"], not an array holding the integer 10809")]
    [TestCase("[daemon]\nhandshake_timeout = 10\n", "x.toml:2: [daemon] handshake_timeout must be a duration string like \"10s\" or \"5m\", not the integer 10")]
    [TestCase("[[disk]]\nname = \"a\"\nsize = true\n", "x.toml:3: [[disk]] 'a': size must be a size like \"512M\" or \"10G\", or an integer byte count, not the boolean true")]
    [TestCase("[[disk]]\nname = \"a\"\nsize = 1.5\n", "x.toml:3: [[disk]] 'a': size must be a size like \"512M\" or \"10G\", or an integer byte count, not the float 1.5")]
    [TestCase("[[disk]]\nname = \"a\"\nsize = \"1G\"\nread_only = \"yes\"\n", "x.toml:4: [[disk]] 'a': read_only must be true or false, not the string \"yes\"")]
    [TestCase("[[disk]]\nname = 7\nsize = \"1G\"\n", "x.toml:2: [[disk]] #1: name must be a string, not the integer 7")]
    [TestCase("[[disk]]\nname = \"a\"\nsize = \"1G\"\ndescription = 1979-05-27\n", "x.toml:4: [[disk]] 'a': description must be a string, not the date-time 1979-05-27")]
    public void WrongTypesAreErrorsWithTheirLine(string toml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(toml, "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.Message, Does.Contain("has 1 problem:"), "a wrongly typed key is reported once, not also as missing or invalid");
    }

    [Test]
    public void SizesMayBeIntegerByteCounts()
    {
        var settings = ConfigLoader.Load("""
            [daemon]
            connection_inflight_bytes = 67108864

            [[disk]]
            name = "a"
            size = 1_048_576
            sector_size = "512"

            [[disk]]
            name = "b"
            size = "1M"
            sector_size = "4K"
            """, "x.toml", "/srv");
        Assert.That(settings.Server.MaxInFlightBytesPerConnection, Is.EqualTo(64L << 20));
        Assert.That(settings.Disks.Select(d => (d.Size, d.SectorSize)), Is.EqualTo(new[] { (1L << 20, 512), (1L << 20, 4096) }));
    }

    [Test]
    public void InlineTablesAndDottedKeysAreReadLikeHeaders()
    {
        var settings = ConfigLoader.Load("""
            daemon = { state_dir = "/srv/md", listen = ["tcp:127.0.0.1:10809"] }
            disk = [ { name = "a", size = "1M" }, { name = "b", size = 4096, read_only = true } ]
            """, "x.toml", "/");
        Assert.That(settings.StateDir, Is.EqualTo("/srv/md"));
        Assert.That(settings.Disks.Select(d => (d.Name, d.ReadOnly)), Is.EqualTo(new[] { ("a", false), ("b", true) }));

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("[daemon]\nstate.dir = \"/srv\"\n", "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("x.toml:2: [daemon] unknown table [daemon.state]"));
    }

    [Test]
    public void AnEmptyPathIsAnError()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("[daemon]\nstate_dir = \"\"\n", "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("x.toml:2: [daemon] state_dir: the path is empty; remove the key to use the default"));
    }

    [Test]
    public void LifecycleTimersAndTheRevocationHookAreRead()
    {
        var defaults = ConfigLoader.Load("[daemon]\n", "x.toml", "/");
        Assert.That((defaults.RevokeGrace, defaults.UnreachableGrace, defaults.RotationCheckInterval, defaults.OnKeyRevoked.Count),
            Is.EqualTo((TimeSpan.FromHours(1), TimeSpan.FromHours(1), TimeSpan.FromHours(1), 0)));

        var set = ConfigLoader.Load("[daemon]\non_key_revoked = [\"/bin/stop-vm\", \"--now\"]\n[timers]\nrevoke_grace = \"90s\"\nrotation_check_interval = \"5m\"\n", "x.toml", "/");
        Assert.That((set.RevokeGrace, set.UnreachableGrace, set.RotationCheckInterval), Is.EqualTo((TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(90), TimeSpan.FromMinutes(5))),
            "unreachable_grace follows revoke_grace unless given");
        Assert.That(set.OnKeyRevoked, Is.EqualTo(new[] { "/bin/stop-vm", "--now" }));

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("[daemon]\non_key_revoked = []\n[timers]\nunreachable_grace = \"0s\"\n", "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("x.toml:2: [daemon] on_key_revoked: give the command as an array")
            .And.Contain("x.toml:4: [timers] unreachable_grace: '0s' is not a positive duration"));
    }

    [Test]
    public void TheExampleFileUsesOnlyKnownKeysAndLoads()
    {
        string? folder = AppContext.BaseDirectory;
        while (folder is not null && !File.Exists(Path.Combine(folder, "disks.toml.example"))) folder = Path.GetDirectoryName(folder);
        Assert.That(folder, Is.Not.Null, "disks.toml.example is not in a folder above the tests");
        var settings = ConfigLoader.LoadFile(Path.Combine(folder!, "disks.toml.example"));
        Assert.That(settings.Disks, Is.Not.Empty);
    }

    [TestCase("stat_dir", "state_dir")]
    [TestCase("lisen", "listen")]
    [TestCase("deamon", "daemon")]
    [TestCase("sectorsize", "sector_size")]
    [TestCase("colour", null)]
    [TestCase("pin", null)]
    public void Suggestions(string typo, string? expected)
    {
        string[] known = ["state_dir", "listen", "daemon", "sector_size", "size", "path", "name"];
        Assert.That(ConfigSuggestions.Closest(typo, known), Is.EqualTo(expected));
    }

    [Test]
    public void OverlongUnixSocketPathIsRefused()
    {
        string path = "/" + new string('s', 120);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load($"[daemon]\nlisten = [\"unix:{path}\"]\n", "x.toml", "/"))!;
        Assert.That(e.Message, Does.Contain("107 bytes"));
    }

    [TestCase("512", 512L)]
    [TestCase("4K", 4096L)]
    [TestCase("10G", 10L << 30)]
    [TestCase("2t", 2L << 40)]
    public void Sizes(string text, long bytes)
    {
        Assert.That(Units.TryParseSize(text, out long parsed), Is.True);
        Assert.That(parsed, Is.EqualTo(bytes));
    }

    [TestCase("")]
    [TestCase("G")]
    [TestCase("-1G")]
    [TestCase("99999999999P")]
    [TestCase("1.5G")]
    public void BadSizes(string text) => Assert.That(Units.TryParseSize(text, out _), Is.False);

    [TestCase("10s")]
    [TestCase("5m")]
    [TestCase("1h")]
    [TestCase("2d")]
    [TestCase("250ms")]
    [TestCase("90s")]
    public void DurationsFormatAsTheyAreRead(string text)
    {
        Assert.That(Units.TryParseDuration(text, out var duration), Is.True);
        Assert.That(Units.FormatDuration(duration), Is.EqualTo(text));
    }

    [TestCase("90s", 90)]
    [TestCase("5m", 300)]
    [TestCase("1h", 3600)]
    [TestCase("250ms", 0.25)]
    public void Durations(string text, double seconds)
    {
        Assert.That(Units.TryParseDuration(text, out var duration), Is.True);
        Assert.That(duration.TotalSeconds, Is.EqualTo(seconds));
    }

    // config show: the effective configuration and its redaction.

    [Test]
    public void ConfigShowPrintsEveryKeyWithDefaultsAndLoadsBackToTheSameConfiguration()
    {
        var settings = ConfigLoader.Load("""
            [daemon]
            state_dir = "state"

            [[key_store]]
            name = "vault1"

            [[encryption_set]]
            name = "des1"
            key_store = "vault1"
            key = "kek1"

            [[disk]]
            name = "db"
            size = "10G"
            description = "a \"quoted\" \\ description"
            encryption_set = "des1"

            [[disk]]
            name = "scratch"
            size = 4096
            """, "x.toml", "/etc/md");
        var effective = EffectiveConfiguration.From(settings);
        string toml = effective.ToToml();

        foreach (var key in ConfigSchema.Tables.SelectMany(t => t.Keys))
            Assert.That(toml, Does.Match($"(?m)^(# )?{key.Name} "), $"config show does not print {key.Name}");
        Assert.That(toml, Does.Contain("""
            [daemon]
            state_dir = "/etc/md/state"
            listen = ["unix:/etc/md/state/nbd.sock"]
            admin_socket = "/etc/md/state/admin.sock"
            max_connections = 512
            handshake_timeout = "10s"
            connection_inflight_bytes = 67108864 # 64 MiB
            platform_key_secret = "/etc/md/state/keys/platform-key.secret"
            """));
        Assert.That(toml, Does.Contain("path = \"/etc/md/state/vaults/vault1\""));
        Assert.That(toml, Does.Contain("identity = \"encryption-set:des1\""));
        Assert.That(toml, Does.Contain("# key_version is not set"));
        Assert.That(toml, Does.Contain("path = \"/etc/md/state/disks/scratch.img\""));

        // Every path is absolute: loaded from another folder, it is the same configuration.
        var reloaded = ConfigLoader.Load(toml, "x.toml", "/elsewhere");
        Assert.That(EffectiveConfiguration.From(reloaded).ToToml(), Is.EqualTo(toml));
        Assert.That(reloaded.Disks[0], Is.EqualTo(settings.Disks[0]));

        var json = JsonDocument.Parse(effective.ToJson()).RootElement;
        Assert.That(json.GetProperty("daemon").GetProperty("max_connections").GetInt32(), Is.EqualTo(512));
        Assert.That(json.GetProperty("disk")[0].GetProperty("size").GetInt64(), Is.EqualTo(10L << 30));
        Assert.That(json.GetProperty("disk")[0].GetProperty("description").GetString(), Is.EqualTo("a \"quoted\" \\ description"));
        Assert.That(json.GetProperty("disk")[1].GetProperty("encryption_set").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(json.GetProperty("encryption_set")[0].GetProperty("key_version").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(json.GetProperty("key_store")[0].GetProperty("master_key_file").GetString(), Is.EqualTo("/etc/md/state/vaults/vault1.master-key"));
    }

    [TestCase("pin", "String", true)]
    [TestCase("passphrase", "String", true)]
    [TestCase("admin_password", "String", true)]
    [TestCase("client-secret", "String", true)]
    [TestCase("api_token", "String", true)]
    [TestCase("private_key", "String", true)]
    [TestCase("Secret", "StringList", true)]
    [TestCase("platform_key_secret", "Path", false)] // a path to a secret is not the secret
    [TestCase("passphrase_file", "String", false)]
    [TestCase("pin_file", "Path", false)]
    [TestCase("key", "String", false)]
    [TestCase("key_version", "String", false)]
    [TestCase("spinner", "String", false)] // whole words, not substrings
    [TestCase("identity", "String", false)]
    [TestCase("token_label", "String", false)] // names the HSM token, holds nothing secret
    public void SecretsAreRecognisedByTheirKeyName(string key, string kindName, bool secret)
    {
        var kind = Enum.Parse<ConfigValueKind>(kindName);
        Assert.That(ConfigRedaction.IsSecret(key, kind), Is.EqualTo(secret));
        Assert.That(ConfigRedaction.Apply(key, kind, "value"), Is.EqualTo(secret ? "(redacted)" : "value"));
        Assert.That(ConfigRedaction.Apply(key, kind, null), Is.Null, "an unset secret is shown as unset");
    }

    [Test]
    public void ConfigShowRedactsASecretValueButNotThePathToIt()
    {
        // A future [[key_store]] type "pkcs11" with a PIN: redaction needs no change to show it safely.
        var table = new ConfigTable("key_store", IsArray: true,
            [new("name", ConfigValueKind.String), new("pin", ConfigValueKind.String), new("pin_file", ConfigValueKind.Path)]);
        var effective = new EffectiveConfiguration("x.toml",
            [EffectiveConfiguration.Table(table, ("name", "hsm"), ("pin", "123456"), ("pin_file", "/run/credentials/md/pin"))], []);

        string toml = effective.ToToml();
        Assert.That(toml, Does.Contain("pin = \"(redacted)\"").And.Contain("pin_file = \"/run/credentials/md/pin\"").And.Not.Contain("123456"));
        string json = effective.ToJson();
        Assert.That(json, Does.Contain("\"pin\": \"(redacted)\"").And.Contain("/run/credentials/md/pin").And.Not.Contain("123456"));
    }

    [Test]
    public void ConfigShowKeepsThePlatformKeySecretPathVisible()
    {
        var settings = ConfigLoader.Load("[daemon]\nplatform_key_secret = \"/run/credentials/md/platform-key\"\n", "x.toml", "/");
        Assert.That(EffectiveConfiguration.From(settings).ToToml(), Does.Contain("platform_key_secret = \"/run/credentials/md/platform-key\""));
    }

    [Test]
    public void TomlStringsAreEscaped() =>
        Assert.That(EffectiveConfiguration.TomlString("a\"b\\c\nd\u0001"), Is.EqualTo("\"a\\\"b\\\\c\\nd\\u0001\""));

    [Test]
    [NonParallelizable]
    public void SecretFilesMayComeFromSystemdCredentials()
    {
        const string toml = """
            [daemon]
            state_dir = "/srv/md"
            platform_key_secret = "credential:platform"
            [[key_store]]
            name = "vault1"
            master_key_file = "credential:vault1-master"
            """;
        string? saved = Environment.GetEnvironmentVariable("CREDENTIALS_DIRECTORY");
        try
        {
            Environment.SetEnvironmentVariable("CREDENTIALS_DIRECTORY", "/run/credentials/managed-disks.service");
            var settings = ConfigLoader.Load(toml, "c.toml", "/");
            Assert.That(settings.PlatformKeySecretFile, Is.EqualTo("/run/credentials/managed-disks.service/platform"));
            Assert.That(settings.KeyStores.Single().MasterKeyFile, Is.EqualTo("/run/credentials/managed-disks.service/vault1-master"));

            Environment.SetEnvironmentVariable("CREDENTIALS_DIRECTORY", null);
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(toml, "c.toml", "/"))!;
            Assert.That(e.Message, Does.Contain("c.toml has 2 problems").And.Contain("LoadCredential=vault1-master:"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("CREDENTIALS_DIRECTORY", saved);
        }
    }
}
