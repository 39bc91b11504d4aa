<#
.SYNOPSIS
  Installs or upgrades plantlink as Windows services run by WinSW (see installers/README.md).

.DESCRIPTION
  .\install.ps1 -Role agent -WinSW .\WinSW-x64.exe -Secrets @{ PLANTLINK_AGENT_TOKEN = '...' }
  .\install.ps1 -Role relay -WinSW .\WinSW-x64.exe -Secrets @{ SALESFORCE_CLIENT_ID = '...'; SALESFORCE_CLIENT_SECRET = '...' }
  .\install.ps1 [-Binary .\plantlink-win-x64.exe]          upgrade what is installed

  Program:  %ProgramFiles%\plantlink\plantlink.exe, plus plantlink-<role>.exe (WinSW) and plantlink-<role>.xml
  Config:   %ProgramData%\plantlink\<role>.yaml (written once from the example, never overwritten)
  Data:     %ProgramData%\plantlink\<role>      (outbox / inbox: never touched by install, upgrade or uninstall)
  Secrets:  <env> elements in plantlink-<role>.xml, readable only by Administrators, SYSTEM and LocalService;
            kept on upgrade, replaced one by one by -Secrets.

  Upgrade = check the new binary against the current config, stop, swap, start. The previous binary
  stays as plantlink.previous.exe; if a service does not come up on the new one, it is put back.
#>
#Requires -RunAsAdministrator
[CmdletBinding()]
param(
  [ValidateSet('agent', 'relay')] [string[]] $Role,
  [string] $Binary,
  [string] $WinSW,
  [hashtable] $Secrets = @{},
  [switch] $NoStart,
  [int] $StartWaitSeconds = 5
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3

$Here = $PSScriptRoot
$ProgramDir = Join-Path $env:ProgramFiles 'plantlink'
$Exe = Join-Path $ProgramDir 'plantlink.exe'
$DataRoot = Join-Path $env:ProgramData 'plantlink'
# Well-known SIDs, so the ACLs work whatever the Windows display language.
$System = '*S-1-5-18'
$Admins = '*S-1-5-32-544'
$LocalService = '*S-1-5-19'

function Say([string] $Message) { Write-Host "plantlink install: $Message" }

function Find-Shipped([string] $Name) {
  foreach ($candidate in @((Join-Path $Here $Name), (Join-Path $Here "..\..\config\$Name"), (Join-Path $Here "..\$Name"), (Join-Path $Here "..\..\dist\$Name"))) {
    if (Test-Path -LiteralPath $candidate -PathType Leaf) { return (Resolve-Path -LiteralPath $candidate).Path }
  }
  return $null
}

# Runs a program and returns its exit code and output. Windows PowerShell 5.1 turns a native
# program's stderr into errors that $ErrorActionPreference = 'Stop' would throw on: not here.
function Invoke-Native([string] $Program, [string[]] $Arguments) {
  $eap = $ErrorActionPreference
  $ErrorActionPreference = 'Continue'
  try {
    $out = & $Program @Arguments 2>&1 | ForEach-Object { "$_" } | Out-String
    return @{ Ok = ($LASTEXITCODE -eq 0); Code = $LASTEXITCODE; Output = $out.Trim() }
  } finally {
    $ErrorActionPreference = $eap
  }
}

function Invoke-Icacls([string[]] $Arguments) {
  & icacls.exe @Arguments | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "icacls $($Arguments -join ' ') failed ($LASTEXITCODE)" }
}

# The secrets a service runs with: the <env> elements of its installed XML, then -Secrets.
function Get-ServiceSecrets([string] $R) {
  $secrets = @{}
  $installed = Join-Path $ProgramDir "plantlink-$R.xml"
  if (Test-Path -LiteralPath $installed) {
    foreach ($entry in ([xml](Get-Content -LiteralPath $installed -Raw)).service.SelectNodes('env')) {
      if ($entry.name -ne 'PLANTLINK_NATIVE_DIR') { $secrets[$entry.name] = $entry.value }
    }
  }
  foreach ($key in $Secrets.Keys) { $secrets[$key] = [string] $Secrets[$key] }
  return $secrets
}

# `plantlink <role> check` with the service's secrets in the environment, as the service would run.
function Test-Config([string] $Program, [string] $R) {
  $secrets = Get-ServiceSecrets $R
  $saved = @{}
  foreach ($key in $secrets.Keys) { $saved[$key] = [Environment]::GetEnvironmentVariable($key); [Environment]::SetEnvironmentVariable($key, $secrets[$key]) }
  try {
    return Invoke-Native $Program @($R, 'check', '--config', (Join-Path $DataRoot "$R.yaml"))
  } finally {
    foreach ($key in $saved.Keys) { [Environment]::SetEnvironmentVariable($key, $saved[$key]) }
  }
}

# Without -Role: upgrade the services already installed.
if (-not $Role) {
  $Role = @('agent', 'relay') | Where-Object { Get-Service -Name "plantlink-$_" -ErrorAction SilentlyContinue }
  if (-not $Role) { throw 'nothing installed yet: say -Role agent or -Role relay' }
}

if (-not $Binary) { $Binary = Find-Shipped 'plantlink-win-x64.exe' }
if (-not $Binary -or -not (Test-Path -LiteralPath $Binary -PathType Leaf)) { throw 'no plantlink-win-x64.exe found next to this script or in dist\: pass -Binary FILE' }
$run = Invoke-Native $Binary @('--version')
if (-not $run.Ok) { throw "$Binary does not run on this machine: $($run.Output)" }
$NewVersion = $run.Output

# 1. Folders and ACLs: config readable by the service, data writable only by it (and admins).
New-Item -ItemType Directory -Force -Path $DataRoot, (Join-Path $DataRoot 'logs') | Out-Null
Invoke-Icacls @($DataRoot, '/inheritance:r', '/grant:r', "${System}:(OI)(CI)F", "${Admins}:(OI)(CI)F", "${LocalService}:(OI)(CI)RX")
Invoke-Icacls @((Join-Path $DataRoot 'logs'), '/grant:r', "${LocalService}:(OI)(CI)M")
foreach ($R in $Role) {
  $data = Join-Path $DataRoot $R
  New-Item -ItemType Directory -Force -Path $data | Out-Null
  Invoke-Icacls @($data, '/grant:r', "${LocalService}:(OI)(CI)M")
  $config = Join-Path $DataRoot "$R.yaml"
  if (-not (Test-Path -LiteralPath $config)) {
    $example = Find-Shipped "$R.example.yaml"
    if (-not $example) { throw "$R.example.yaml not found next to this script: cannot write a starter $config" }
    # The service may write only its data folder: point dataDir at it (forward slashes: plain YAML).
    $text = (Get-Content -LiteralPath $example -Raw) -replace '(?m)^(  dataDir:)[^#\r\n]*', "`$1 C:/ProgramData/plantlink/$R   "
    [IO.File]::WriteAllText($config, $text, (New-Object Text.UTF8Encoding $false))
    Say "wrote a starter $config from $(Split-Path -Leaf $example): edit it"
  }
}

# 2. An upgrade must not stop a working service for a binary that rejects its config.
$Upgrading = Test-Path -LiteralPath $Exe
if ($Upgrading) {
  Say "upgrading $((Invoke-Native $Exe @('--version')).Output) -> $NewVersion"
  foreach ($R in $Role) {
    $check = Test-Config $Binary $R
    if (-not $check.Ok) { throw "the new binary refuses $DataRoot\$R.yaml, nothing changed:`n$($check.Output)" }
  }
}

# 3. Stage the new binary, then stop, swap, start.
New-Item -ItemType Directory -Force -Path $ProgramDir | Out-Null
Copy-Item -LiteralPath $Binary -Destination (Join-Path $ProgramDir 'plantlink.new.exe') -Force
if (-not (Invoke-Native (Join-Path $ProgramDir 'plantlink.new.exe') @('--version')).Ok) { throw 'the copied binary does not run' }

$WasRunning = @()
$HadService = @()
foreach ($R in $Role) {
  $svc = Get-Service -Name "plantlink-$R" -ErrorAction SilentlyContinue
  if ($svc) { $HadService += $R }
  if ($svc -and $svc.Status -ne 'Stopped') {
    $WasRunning += $R
    Say "stopping plantlink-$R"
    # WinSW sends Ctrl+C: the service finishes its batch and closes its database.
    Stop-Service -Name "plantlink-$R"
    $svc.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(60))
  }
}
if ($Upgrading) { Move-Item -LiteralPath $Exe -Destination (Join-Path $ProgramDir 'plantlink.previous.exe') -Force }
Move-Item -LiteralPath (Join-Path $ProgramDir 'plantlink.new.exe') -Destination $Exe -Force

foreach ($R in $Role) {
  $wrapper = Join-Path $ProgramDir "plantlink-$R.exe"
  if (-not (Test-Path -LiteralPath $wrapper)) {
    if (-not $WinSW) { $WinSW = Find-Shipped 'WinSW-x64.exe' }
    if (-not $WinSW -or -not (Test-Path -LiteralPath $WinSW)) { throw "WinSW not found: pass -WinSW path\to\WinSW-x64.exe (2.12 or later)" }
    Copy-Item -LiteralPath $WinSW -Destination $wrapper
  }
  # The service definition: the shipped template plus the secrets (kept from the installed one).
  $template = Find-Shipped "plantlink-$R.xml"
  if (-not $template) { throw "plantlink-$R.xml not found next to this script" }
  $secrets = Get-ServiceSecrets $R
  $xml = [xml](Get-Content -LiteralPath $template -Raw)
  foreach ($key in ($secrets.Keys | Sort-Object)) {
    $entry = $xml.CreateElement('env')
    $entry.SetAttribute('name', $key)
    $entry.SetAttribute('value', $secrets[$key])
    [void] $xml.service.AppendChild($entry)
  }
  $definition = Join-Path $ProgramDir "plantlink-$R.xml"
  $xml.Save($definition)
  Invoke-Icacls @($definition, '/inheritance:r', '/grant:r', "${System}:F", "${Admins}:F", "${LocalService}:R")

  $register = Invoke-Native $wrapper @($(if ($HadService -contains $R) { 'refresh' } else { 'install' }))
  if (-not $register.Ok) { throw "WinSW could not register plantlink-$R ($($register.Code)): $($register.Output)" }
}
Say "installed $Exe ($NewVersion)"

if ($NoStart) { Say 'not started (-NoStart): Start-Service plantlink-<role>'; exit 0 }
$Started = @()
foreach ($R in $Role) {
  if (($HadService -contains $R) -and ($WasRunning -notcontains $R)) {
    Say "plantlink-$R was stopped before the upgrade: left stopped"
    continue
  }
  $check = Test-Config $Exe $R
  if (-not $check.Ok) {
    Say "plantlink-$R is installed but not started: $DataRoot\$R.yaml is not valid yet:"
    Write-Host $check.Output
    Say "fix it (secrets: run again with -Secrets @{...}), then: Start-Service plantlink-$R"
    continue
  }
  Say "starting plantlink-$R"
  Start-Service -Name "plantlink-$R"
  $Started += $R
}
if ($Started.Count -eq 0) { exit 0 }
Start-Sleep -Seconds $StartWaitSeconds
foreach ($R in $Started) {
  if ((Get-Service -Name "plantlink-$R").Status -ne 'Running') {
    $previous = Join-Path $ProgramDir 'plantlink.previous.exe'
    if ($Upgrading -and (Test-Path -LiteralPath $previous)) {
      Say "plantlink-$R did not stay up on $NewVersion; putting the previous binary back"
      foreach ($S in $Role) { Stop-Service -Name "plantlink-$S" -ErrorAction SilentlyContinue }
      Move-Item -LiteralPath $previous -Destination $Exe -Force
      foreach ($S in $WasRunning) { Start-Service -Name "plantlink-$S" -ErrorAction SilentlyContinue }
      throw "upgrade rolled back; see $DataRoot\logs\plantlink-$R.err.log"
    }
    throw "plantlink-$R is not running; see $DataRoot\logs\plantlink-$R.err.log"
  }
  Say "plantlink-$R is running"
}
